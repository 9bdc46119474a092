//! `s3://bucket/prefix` inputs: the store, from the environment, and the listing of a prefix.

use futures::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;

use crate::inputs::is_trace_name;
use crate::Error;

/// The S3 store of a bucket, configured from the `AWS_*` environment variables
/// (`AmazonS3Builder::from_env`: keys, region, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, …).
pub(crate) fn store(bucket: &str) -> Result<AmazonS3, Error> {
    AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .build()
        .map_err(|e| Error::Input(format!("s3://{bucket}: {}", one_line(&e.to_string()))))
}

/// What a prefix holds.
pub(crate) struct Listing {
    /// Trace files (`*.out`, temporary files excluded), in name order.
    pub(crate) traces: Vec<ObjectPath>,
    /// The tables with Parquet files under `<prefix>/<table>/`.
    pub(crate) tables: Vec<&'static str>,
    /// How many Parquet files.
    pub(crate) parquet_files: usize,
}

/// Lists the prefix once, recursively.
pub(crate) async fn list(
    store: &AmazonS3,
    arg: &str,
    bucket: &str,
    prefix: &str,
) -> Result<Listing, Error> {
    let prefix_path = (!prefix.is_empty()).then(|| ObjectPath::from(prefix));
    let objects: Vec<_> = store
        .list(prefix_path.as_ref())
        .try_collect()
        .await
        .map_err(|e| Error::Input(format!("{arg}: cannot list: {}", describe(&e, bucket))))?;
    let mut listing = Listing {
        traces: Vec::new(),
        tables: Vec::new(),
        parquet_files: 0,
    };
    for object in objects {
        let key = object.location.as_ref();
        let relative = match &prefix_path {
            Some(p) => key
                .strip_prefix(p.as_ref())
                .and_then(|r| r.strip_prefix('/'))
                .unwrap_or(key),
            None => key,
        };
        let name = relative.rsplit('/').next().unwrap_or(relative);
        if name.ends_with(".parquet") {
            let first = relative.split('/').next().unwrap_or_default();
            if let Some(&table) = crate::TABLES.iter().find(|&&t| t == first) {
                listing.parquet_files += 1;
                if !listing.tables.contains(&table) {
                    listing.tables.push(table);
                }
            }
        } else if is_trace_name(name) {
            listing.traces.push(object.location);
        }
    }
    listing.traces.sort();
    Ok(listing)
}

/// An object store error in a few words: what S3 said, not the whole request.
fn describe(e: &object_store::Error, bucket: &str) -> String {
    let text = one_line(&e.to_string());
    let lower = text.to_ascii_lowercase();
    if lower.contains("403")
        || lower.contains("signaturedoesnotmatch")
        || lower.contains("invalidaccesskeyid")
        || lower.contains("accessdenied")
    {
        format!(
            "access denied to bucket {bucket} (check AWS_ACCESS_KEY_ID and \
             AWS_SECRET_ACCESS_KEY): {text}"
        )
    } else {
        text
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
