// Drives the OpenWhisk emulator with the official JavaScript client (the `openwhisk` npm package,
// apache/openwhisk-client-js) to show the emulator follows the REST API as real clients use it.
//
// It owns only the client-side checks; the emulator is started by tests/suite/official_client.rs,
// which passes OW_APIHOST (http://127.0.0.1:PORT), OW_AUTH (the guest `uuid:key`) and OW_ACTION_ZIP
// (a zip holding the echo-action fixture as a top-level `exec`). Besides the client it uses fetch
// only for the web action URL and the emulator's `/__emulator` alarm control, which the client has
// no API for. Prints `ok <name>` per check; the first failure prints `FAIL <name>: ...` and exits 1.

import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import openwhisk from 'openwhisk'

const apihost = required('OW_APIHOST')
const apiKey = required('OW_AUTH')
const zip = readFileSync(required('OW_ACTION_ZIP'))
const KIND = 'rust:1.34'

// `apihost` with an explicit http:// scheme: the client assumes https only when the scheme is missing
const ow = openwhisk({ apihost, api_key: apiKey })

function required (name) {
  const v = process.env[name]
  if (!v) {
    console.error(`FAIL setup: environment variable ${name} is not set`)
    process.exit(2)
  }
  return v
}

async function check (name, fn) {
  try {
    await fn()
  } catch (e) {
    const details = e && e.statusCode !== undefined
      ? `${e.message} (statusCode ${e.statusCode}, body ${JSON.stringify(e.error)})`
      : (e && e.stack) || String(e)
    console.log(`FAIL ${name}: ${details}`)
    process.exit(1)
  }
  console.log(`ok ${name}`)
}

// Resolves to the error a rejected client call carries, after checking its HTTP status.
async function rejects (promise, statusCode) {
  let error
  try {
    const value = await promise
    assert.fail(`expected a rejection with statusCode ${statusCode}, got ${JSON.stringify(value)}`)
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e
    error = e
  }
  assert.equal(error.name, 'OpenWhiskError', `not an OpenWhiskError: ${error.stack}`)
  assert.equal(error.statusCode, statusCode, `wrong statusCode: ${error.message}`)
  return error
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

// Asynchronous activations land later: poll `probe` (bounded) until it returns a value.
async function eventually (what, probe) {
  for (let i = 0; i < 300; i++) {
    const v = await probe()
    if (v !== undefined) return v
    await sleep(100)
  }
  assert.fail(`gave up waiting for ${what}`)
}

// The activation record once it exists (GET answers 404 until the activation completes).
function activationDone (activationId) {
  return eventually(`activation ${activationId}`, async () => {
    try {
      return await ow.activations.get({ activationId })
    } catch (e) {
      if (e.statusCode === 404) return undefined
      throw e
    }
  })
}

// The `echo` activations caused by one trigger activation.
function causedBy (triggerActivation) {
  return eventually(`an echo activation caused by ${triggerActivation}`, async () => {
    const list = await ow.activations.list({ name: 'echo', docs: true, limit: 50 })
    const hits = list.filter(a => a.cause === triggerActivation)
    return hits.length > 0 ? hits : undefined
  })
}

// A fire answered 204 (no active rule): the client resolves with needle's raw body, an empty Buffer,
// where a 202 gives `{activationId}`.
function assertNoContent (fired) {
  assert.ok(Buffer.isBuffer(fired) && fired.length === 0, `expected the empty body of a 204, got ${JSON.stringify(fired)}`)
}

const names = list => list.map(e => e.name).sort()

await check('namespaces.list', async () => {
  assert.deepEqual(await ow.namespaces.list(), ['guest'])
})

await check('api option with a full base URL', async () => {
  const viaApi = openwhisk({ api: `${apihost}/api/v1/`, api_key: apiKey })
  assert.deepEqual(await viaApi.namespaces.list(), ['guest'])
})

await check('wrong key rejects with 401', async () => {
  const wrong = openwhisk({ apihost, api_key: '00000000-0000-0000-0000-000000000000:not-the-key' })
  const e = await rejects(wrong.triggers.list(), 401)
  assert.match(e.message, /The supplied authentication is invalid/)
})

await check('triggers.create', async () => {
  const t = await ow.triggers.create({
    name: 't',
    annotations: { note: 'from client-js' },
    trigger: { parameters: [{ key: 'a', value: 1 }] }
  })
  assert.equal(t.name, 't')
  assert.equal(t.namespace, 'guest')
  assert.deepEqual(t.parameters, [{ key: 'a', value: 1 }])
  assert.deepEqual(t.annotations, [{ key: 'note', value: 'from client-js' }])
})

await check('duplicate triggers.create rejects with 409', async () => {
  await rejects(ow.triggers.create({ name: 't' }), 409)
})

await check('triggers.get', async () => {
  const t = await ow.triggers.get('t')
  assert.equal(t.name, 't')
  assert.deepEqual(t.parameters, [{ key: 'a', value: 1 }])
})

await check('triggers.get of a missing trigger rejects with 404', async () => {
  const e = await rejects(ow.triggers.get({ name: 'missing' }), 404)
  assert.match(e.message, /Returned HTTP 404/)
})

await check('triggers.update', async () => {
  await ow.triggers.update({ name: 't', trigger: { parameters: [{ key: 'b', value: 2 }] } })
  assert.deepEqual((await ow.triggers.get('t')).parameters, [{ key: 'b', value: 2 }])
})

await check('triggers.list', async () => {
  assert.deepEqual(names(await ow.triggers.list()), ['t'])
})

await check('triggers.invoke without an active rule (204)', async () => {
  assertNoContent(await ow.triggers.invoke({ name: 't', params: { x: 1 } }))
})

await check('actions.create from a zip', async () => {
  const a = await ow.actions.create({ name: 'echo', action: zip, kind: KIND })
  assert.equal(a.name, 'echo')
  assert.equal(a.exec.kind, KIND)
  assert.equal(a.exec.binary, true)
})

await check('actions.get and actions.list', async () => {
  const a = await ow.actions.get({ name: 'echo', code: false })
  assert.equal(a.exec.kind, KIND)
  assert.equal(a.exec.code, undefined)
  assert.deepEqual(names(await ow.actions.list()), ['echo'])
})

await check('duplicate actions.create rejects with 409', async () => {
  await rejects(ow.actions.create({ name: 'echo', action: zip, kind: KIND }), 409)
})

await check('actions.invoke blocking with result', async () => {
  const result = await ow.actions.invoke({ name: 'echo', blocking: true, result: true, params: { n: 1 } })
  assert.deepEqual(result.echo, { n: 1 })
  assert.equal(result.action_name, '/guest/echo')
})

await check('actions.invoke blocking of a failing action rejects with 502', async () => {
  const e = await rejects(ow.actions.invoke({ name: 'echo', blocking: true, result: true, params: { fail: true } }), 502)
  // the client digs the message out of the activation record the controller answers with
  assert.match(e.message, /echo-action: failing as asked/)
  assert.equal(e.error.response.status, 'application error')
})

await check('actions.invoke non-blocking, then activations get/result/logs/list', async () => {
  const { activationId } = await ow.actions.invoke({ name: 'echo', params: { n: 2 } })
  assert.match(activationId, /^[0-9a-f]{32}$/)
  const record = await activationDone(activationId)
  assert.equal(record.name, 'echo')
  assert.equal(record.namespace, 'guest')
  assert.deepEqual(record.response.result.echo, { n: 2 })
  const result = await ow.activations.result({ activationId })
  assert.equal(result.success, true)
  assert.equal(result.status, 'success')
  assert.deepEqual(result.result.echo, { n: 2 })
  const { logs } = await ow.activations.logs(activationId)
  assert.ok(logs.some(l => l.endsWith(`stdout: echo-action: activation ${activationId}`)), JSON.stringify(logs))
  const list = await ow.activations.list({ name: 'echo', limit: 1 })
  assert.equal(list.length, 1)
  assert.equal(list[0].activationId, activationId)
})

await check('packages.create (publish) with an action inside', async () => {
  const p = await ow.packages.create({
    name: 'p',
    package: { publish: true, parameters: [{ key: 'a', value: 'pkg' }, { key: 'b', value: 'pkg' }] }
  })
  assert.equal(p.publish, true)
  await ow.actions.create({ name: 'p/echo', action: zip, kind: KIND })
  assert.deepEqual(names((await ow.packages.get('p')).actions), ['echo'])
  // a namespace's action list includes the actions inside its packages
  const listed = (await ow.actions.list()).map(a => `${a.namespace}/${a.name}`).sort()
  assert.deepEqual(listed, ['guest/echo', 'guest/p/echo'])
})

await check('packages.create binding and invoke through it', async () => {
  const b = await ow.packages.create({
    name: 'b',
    package: { binding: { namespace: 'guest', name: 'p' }, parameters: [{ key: 'b', value: 'binding' }] }
  })
  assert.deepEqual(b.binding, { namespace: 'guest', name: 'p' })
  const result = await ow.actions.invoke({ name: 'b/echo', blocking: true, result: true, params: { c: 'invoke' } })
  assert.deepEqual(result.echo, { a: 'pkg', b: 'binding', c: 'invoke' })
  assert.deepEqual(names(await ow.packages.list()), ['b', 'p'])
  assert.deepEqual((await ow.packages.get('b')).binding, { namespace: 'guest', name: 'p' })
})

await check('rules.create', async () => {
  const r = await ow.rules.create({ name: 'r', trigger: 't', action: 'echo' })
  assert.equal(r.name, 'r')
  assert.equal(r.status, 'active')
  assert.deepEqual(r.trigger, { name: 't', path: 'guest' })
  assert.deepEqual(r.action, { name: 'echo', path: 'guest' })
  assert.deepEqual(names(await ow.rules.list()), ['r'])
})

await check('triggers.invoke with an active rule (202) runs the action', async () => {
  const fired = await ow.triggers.invoke({ name: 't', params: { x: 1 } })
  assert.match(fired.activationId, /^[0-9a-f]{32}$/)
  const [echo] = await causedBy(fired.activationId)
  // trigger parameters merged with the fire payload
  // the controller merges the fire request's headers in as __ow_headers (Triggers.scala:160-170)
  const { __ow_headers: headers, ...params } = echo.response.result.echo
  assert.deepEqual(params, { b: 2, x: 1 })
  assert.equal(typeof headers.authorization, 'string')
  // the trigger's own record holds the payload and one log line per rule
  const record = await activationDone(fired.activationId)
  assert.equal(record.name, 't')
  assert.deepEqual(record.response.result, { x: 1 })
  const [log] = record.logs.map(l => JSON.parse(l))
  assert.deepEqual(log, { statusCode: 0, success: true, activationId: echo.activationId, rule: 'guest/r', action: 'guest/echo' })
})

await check('rules.disable stops fires, rules.enable restores them', async () => {
  await ow.rules.disable({ name: 'r' })
  assert.equal((await ow.rules.get('r')).status, 'inactive')
  assertNoContent(await ow.triggers.invoke({ name: 't' }))
  await ow.rules.enable({ name: 'r' })
  assert.equal((await ow.rules.get('r')).status, 'active')
  assert.match((await ow.triggers.invoke({ name: 't' })).activationId, /^[0-9a-f]{32}$/)
})

await check('rules.delete', async () => {
  await ow.rules.delete({ name: 'r' })
  assert.deepEqual(await ow.rules.list(), [])
  await rejects(ow.rules.get('r'), 404)
})

const FEED = '/whisk.system/alarms/interval'

await check('feeds.create', async () => {
  await ow.triggers.create({ name: 'tick', annotations: { feed: FEED } })
  const record = await ow.feeds.create({
    name: FEED,
    trigger: 'tick',
    params: { minutes: 5, trigger_payload: { hello: 'alarm' } }
  })
  // feeds run the feed action blocking; the client hands back the whole activation record
  assert.equal(record.response.success, true, JSON.stringify(record))
})

await check('feeds.get', async () => {
  const record = await ow.feeds.get({ name: FEED, trigger: 'tick' })
  assert.equal(record.response.result.config.minutes, 5)
  assert.equal(record.response.result.status.active, true)
})

await check('an alarm from the feed fires its trigger through a rule', async () => {
  await ow.rules.create({ name: 'alarm-rule', trigger: 'tick', action: 'echo' })
  const fire = await fetch(`${apihost}/__emulator/alarms/fire`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ trigger: '/guest/tick' })
  })
  assert.deepEqual(await fire.json(), { fired: [{ trigger: '/guest/tick', status: 202 }] })
  const echo = await eventually('the alarm payload at the echo action', async () => {
    const list = await ow.activations.list({ name: 'echo', docs: true, limit: 50 })
    return list.find(a => a.response.result.echo && a.response.result.echo.hello === 'alarm')
  })
  const { __ow_headers: alarmHeaders, ...alarmParams } = echo.response.result.echo
  assert.deepEqual(alarmParams, { hello: 'alarm' })
  assert.equal(typeof alarmHeaders, 'object')
  await ow.rules.delete({ name: 'alarm-rule' })
})

await check('feeds.delete', async () => {
  const record = await ow.feeds.delete({ name: FEED, trigger: 'tick' })
  assert.equal(record.response.success, true, JSON.stringify(record))
  // the provider no longer knows the trigger: READ is an application error
  await rejects(ow.feeds.get({ name: FEED, trigger: 'tick' }), 502)
  await ow.triggers.delete('tick')
})

await check('web action URL', async () => {
  await ow.actions.create({ name: 'web', action: zip, kind: KIND, annotations: { 'web-export': true } })
  const r = await fetch(`${apihost}/api/v1/web/guest/default/web.json?x=1`)
  assert.equal(r.status, 200)
  const body = await r.json()
  assert.equal(body.echo.x, '1')
  assert.equal(body.echo.__ow_method, 'get')
})

await check('deletes', async () => {
  await ow.triggers.delete({ name: 't' })
  await rejects(ow.triggers.get('t'), 404)
  await rejects(ow.triggers.delete('t'), 404)
  for (const name of ['echo', 'web', 'p/echo']) await ow.actions.delete({ name })
  await ow.packages.delete('b')
  await ow.packages.delete('p')
  assert.deepEqual(await ow.actions.list(), [])
  assert.deepEqual(await ow.packages.list(), [])
})

console.log('all checks passed')
