//! Tables over trace files, decoded when a query scans them.
//!
//! Each table is a DataFusion `StreamingTable` of as many partitions as the session runs
//! (at most one per file). A partition reads its files one after the other: a file is fetched
//! (from disk or an object store) and decoded on a blocking thread into the scanned table
//! (`flight_recorder_parquet::read_snapshot` with `TableOptions::only`: the other tables' rows
//! are not built), which is handed on in batches of the session's batch size. Memory holds one
//! file's table per partition at a time, whatever the number of files.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SessionContext;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use flight_recorder_parquet::{SnapshotTables, TableOptions};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::Error;

/// Where a trace file is.
#[derive(Clone)]
pub(crate) enum TraceSource {
    /// A local file.
    Local(PathBuf),
    /// An object of a store.
    Object {
        /// `s3://bucket/key`, for messages.
        name: String,
        store: Arc<dyn ObjectStore>,
        path: ObjectPath,
    },
}

impl std::fmt::Debug for TraceSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

impl TraceSource {
    fn name(&self) -> String {
        match self {
            TraceSource::Local(path) => path.display().to_string(),
            TraceSource::Object { name, .. } => name.clone(),
        }
    }

    /// Its size, for balancing partitions (0 when unknown).
    fn size(&self) -> u64 {
        match self {
            TraceSource::Local(path) => std::fs::metadata(path).map_or(0, |m| m.len()),
            TraceSource::Object { .. } => 0,
        }
    }

    /// Reads and decodes the file: `Ok(Err(why))` when it cannot be decoded (the caller skips
    /// it), `Err` when it cannot be fetched.
    async fn read(
        &self,
        options: &TableOptions,
    ) -> Result<Result<SnapshotTables, String>, DataFusionError> {
        let options = options.clone();
        let decoded = match self {
            TraceSource::Local(path) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || {
                    flight_recorder_parquet::read_snapshot(&path, &options)
                })
                .await
            }
            TraceSource::Object { name, store, path } => {
                let bytes = store
                    .get(path)
                    .await
                    .map_err(|e| DataFusionError::External(Box::new(Fetch(name.clone(), e))))?
                    .bytes()
                    .await
                    .map_err(|e| DataFusionError::External(Box::new(Fetch(name.clone(), e))))?;
                let name = name.clone();
                tokio::task::spawn_blocking(move || {
                    flight_recorder_parquet::read_snapshot_bytes(&name, &bytes, &options)
                })
                .await
            }
        };
        let decoded = decoded.map_err(|e| DataFusionError::External(Box::new(e)))?;
        // The error names the file already; the warning names it once.
        Ok(decoded.map_err(|e| {
            let text = e.to_string();
            let prefix = format!("{}: ", e.path.display());
            text.strip_prefix(&prefix).unwrap_or(&text).to_string()
        }))
    }
}

/// An object that could not be fetched.
#[derive(Debug)]
struct Fetch(String, object_store::Error);

impl std::fmt::Display for Fetch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.0, self.1)
    }
}

impl std::error::Error for Fetch {}

/// The trace files that could not be decoded, each reported once however many tables read it.
#[derive(Debug)]
pub struct SkippedFiles {
    warn: bool,
    files: Mutex<BTreeMap<String, String>>,
    decoded: AtomicUsize,
}

impl SkippedFiles {
    pub(crate) fn new(warn: bool) -> SkippedFiles {
        SkippedFiles {
            warn,
            files: Mutex::new(BTreeMap::new()),
            decoded: AtomicUsize::new(0),
        }
    }

    /// How many files were skipped.
    pub fn count(&self) -> usize {
        self.files.lock().map_or(0, |files| files.len())
    }

    /// The files skipped, with why, in name order.
    pub fn files(&self) -> Vec<(String, String)> {
        self.files.lock().map_or_else(
            |_| Vec::new(),
            |files| files.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        )
    }

    /// How many times a file was decoded (once per file and scanned table).
    pub fn decoded(&self) -> usize {
        self.decoded.load(Ordering::Relaxed)
    }

    fn skip(&self, name: String, error: String) {
        let Ok(mut files) = self.files.lock() else {
            return;
        };
        if let std::collections::btree_map::Entry::Vacant(entry) = files.entry(name) {
            if self.warn {
                eprintln!(
                    "flight-recorder-query: warning: {}: {error} (skipped)",
                    entry.key()
                );
            }
            entry.insert(error);
        }
    }
}

/// One partition of a table: some files, read in turn.
#[derive(Debug)]
struct TracePartition {
    table: &'static str,
    schema: SchemaRef,
    files: Arc<[TraceSource]>,
    options: TableOptions,
    skipped: Arc<SkippedFiles>,
}

impl PartitionStream for TracePartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let batch_size = ctx.session_config().batch_size().max(1);
        let table = self.table;
        let schema = Arc::clone(&self.schema);
        // Only the scanned table's rows are built.
        let options = TableOptions {
            only: Some(table),
            ..self.options.clone()
        };
        let skipped = Arc::clone(&self.skipped);
        let files = Arc::clone(&self.files);
        let stream_schema = Arc::clone(&schema);
        let stream = futures::stream::iter(0..files.len())
            .then(move |i| {
                let source = files[i].clone();
                let options = options.clone();
                let skipped = Arc::clone(&skipped);
                let schema = Arc::clone(&schema);
                async move {
                    let batches = match source.read(&options).await? {
                        Ok(tables) => {
                            skipped.decoded.fetch_add(1, Ordering::Relaxed);
                            table_batches(tables, table, &schema, batch_size)?
                        }
                        Err(error) => {
                            skipped.skip(source.name(), error);
                            Vec::new()
                        }
                    };
                    Ok::<_, DataFusionError>(futures::stream::iter(batches.into_iter().map(Ok)))
                }
            })
            .try_flatten();
        Box::pin(RecordBatchStreamAdapter::new(stream_schema, stream))
    }
}

/// The scanned table of a decoded file, in slices of at most `batch_size` rows, with the
/// table's schema.
fn table_batches(
    tables: SnapshotTables,
    table: &str,
    schema: &SchemaRef,
    batch_size: usize,
) -> Result<Vec<RecordBatch>, DataFusionError> {
    let Some((_, batch)) = tables.tables.into_iter().find(|(name, _)| *name == table) else {
        return Ok(Vec::new());
    };
    let batch = if batch.schema() == *schema {
        batch
    } else {
        RecordBatch::try_new(Arc::clone(schema), batch.columns().to_vec())?
    };
    let rows = batch.num_rows();
    Ok((0..rows)
        .step_by(batch_size)
        .map(|offset| batch.slice(offset, batch_size.min(rows - offset)))
        .collect())
}

/// Registers every table over the trace files, in `partitions` partitions of about equal bytes.
pub(crate) fn register(
    ctx: &SessionContext,
    files: &[TraceSource],
    partitions: usize,
    options: &TableOptions,
    skipped: &Arc<SkippedFiles>,
) -> Result<(), Error> {
    let groups = balance(files, partitions.max(1));
    for &table in crate::TABLES {
        let schema = flight_recorder_parquet::schema(table)
            .ok_or_else(|| Error::Input(format!("no schema for table {table}")))?;
        let parts: Vec<Arc<dyn PartitionStream>> = groups
            .iter()
            .map(|group| {
                Arc::new(TracePartition {
                    table,
                    schema: Arc::clone(&schema),
                    files: Arc::clone(group),
                    options: options.clone(),
                    skipped: Arc::clone(skipped),
                }) as Arc<dyn PartitionStream>
            })
            .collect();
        let provider = StreamingTable::try_new(schema, parts)?;
        ctx.register_table(table, Arc::new(provider))?;
    }
    Ok(())
}

/// Splits the files into at most `n` groups of about equal size (the largest file first into
/// the lightest group), each group in name order.
fn balance(files: &[TraceSource], n: usize) -> Vec<Arc<[TraceSource]>> {
    let n = n.min(files.len()).max(1);
    let mut by_size: Vec<(u64, usize)> = files.iter().map(|f| f.size()).zip(0..).collect();
    by_size.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut groups: Vec<(u64, Vec<usize>)> = vec![(0, Vec::new()); n];
    for (size, index) in by_size {
        let lightest = groups
            .iter_mut()
            .min_by_key(|(bytes, members)| (*bytes, members.len()))
            .expect("at least one group");
        lightest.0 += size;
        lightest.1.push(index);
    }
    groups
        .into_iter()
        .map(|(_, mut members)| {
            members.sort_unstable();
            members.into_iter().map(|i| files[i].clone()).collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balance_keeps_every_file_once() {
        let files: Vec<TraceSource> = (0..10)
            .map(|i| TraceSource::Local(PathBuf::from(format!("/nonexistent/{i}.out"))))
            .collect();
        let groups = balance(&files, 4);
        assert_eq!(groups.len(), 4);
        let mut names: Vec<String> = groups
            .iter()
            .flat_map(|g| g.iter().map(|f| f.name()))
            .collect();
        names.sort();
        assert_eq!(names.len(), 10);
        names.dedup();
        assert_eq!(names.len(), 10);
        assert_eq!(balance(&files[..2], 8).len(), 2);
    }
}
