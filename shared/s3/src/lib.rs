//! owfeed-s3: a small blocking S3 client (to be written by the S3 helper).
