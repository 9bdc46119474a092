//! The inputs of a query: what each command-line argument is, and the tables over Parquet
//! files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::MemTable;
use datafusion::execution::context::SessionContext;
use flight_recorder_format::dump_files;
use object_store::ObjectStore;

use crate::traces::TraceSource;
use crate::{s3, Error};

/// What the inputs of a query hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// Trace files, decoded when a query scans a table.
    Traces,
    /// Parquet files of `flight-recorder export --to parquet`, `<root>/<table>/**/*.parquet`.
    Parquet,
}

/// One input as given on the command line, once recognized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A trace file (any file named on the command line is taken for one).
    TraceFile(PathBuf),
    /// A directory searched recursively for trace files (`*.out`, hidden files excluded).
    TraceDir(PathBuf),
    /// A directory of the Parquet export: it has a subdirectory named after a table.
    ParquetDir(PathBuf),
    /// `s3://bucket/prefix`, listed to find Parquet files or trace files.
    S3 {
        /// The bucket.
        bucket: String,
        /// The prefix, without a trailing `/` (may be empty).
        prefix: String,
    },
}

impl Input {
    /// Recognizes one argument: an `s3://` URL, or a local path that must exist.
    pub fn parse(arg: &str) -> Result<Input, Error> {
        if let Some(rest) = arg.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(Error::Input(format!(
                    "{arg}: no bucket: give s3://bucket or s3://bucket/prefix"
                )));
            }
            return Ok(Input::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
            });
        }
        if arg.contains("://") {
            return Err(Error::Input(format!(
                "{arg}: only local paths and s3:// URLs can be read"
            )));
        }
        let path = PathBuf::from(arg);
        let meta = std::fs::metadata(&path).map_err(|e| Error::Input(format!("{arg}: {e}")))?;
        if !meta.is_dir() {
            return Ok(Input::TraceFile(path));
        }
        if is_parquet_export(&path) {
            Ok(Input::ParquetDir(path))
        } else {
            Ok(Input::TraceDir(path))
        }
    }
}

/// Whether a directory is (the root of) a Parquet export: a subdirectory named after a table.
fn is_parquet_export(dir: &Path) -> bool {
    crate::TABLES.iter().any(|table| dir.join(table).is_dir())
}

/// An object store the session must know, for the URLs of its tables.
pub(crate) struct Store {
    pub(crate) url: url::Url,
    pub(crate) store: Arc<dyn ObjectStore>,
}

/// Where a Parquet export is: a local directory or a prefix of an object store.
#[derive(Debug, Clone)]
pub(crate) struct ParquetRoot {
    /// The root's URL, ending in `/` (`file:///…/` or `s3://bucket/prefix/`).
    pub(crate) url: String,
    /// The tables that have at least one file under the root.
    pub(crate) tables: Vec<&'static str>,
}

/// Everything the inputs hold.
pub(crate) struct Found {
    pub(crate) kind: InputKind,
    pub(crate) traces: Vec<TraceSource>,
    pub(crate) parquet_roots: Vec<ParquetRoot>,
    pub(crate) stores: Vec<Store>,
    pub(crate) files: usize,
}

/// Recognizes the inputs and lists what they hold.
pub(crate) async fn find(args: &[String]) -> Result<Found, Error> {
    if args.is_empty() {
        return Err(Error::Input(
            "no input: give trace files, directories or s3:// URLs".into(),
        ));
    }
    let mut traces = Vec::new();
    let mut parquet_roots = Vec::new();
    let mut stores: Vec<Store> = Vec::new();
    let mut parquet_files = 0usize;
    for arg in args {
        match Input::parse(arg)? {
            Input::TraceFile(path) => {
                check_readable(&path)?;
                traces.push(TraceSource::Local(path));
            }
            Input::TraceDir(dir) => {
                let mut files = Vec::new();
                walk(&dir, &mut files)
                    .map_err(|e| Error::Input(format!("{}: {e}", dir.display())))?;
                if files.is_empty() {
                    return Err(Error::Input(format!(
                        "{}: the directory holds no trace files (*.out) and no Parquet export",
                        dir.display()
                    )));
                }
                files.sort();
                for file in &files {
                    check_readable(file)?;
                }
                traces.extend(files.into_iter().map(TraceSource::Local));
            }
            Input::ParquetDir(dir) => {
                let dir = std::path::absolute(&dir)
                    .map_err(|e| Error::Input(format!("{}: {e}", dir.display())))?;
                let mut tables = Vec::new();
                for &table in crate::TABLES {
                    let mut files = Vec::new();
                    let table_dir = dir.join(table);
                    if table_dir.is_dir() {
                        walk_ext(&table_dir, "parquet", &mut files)
                            .map_err(|e| Error::Input(format!("{}: {e}", table_dir.display())))?;
                    }
                    if !files.is_empty() {
                        parquet_files += files.len();
                        tables.push(table);
                    }
                }
                let url = url::Url::from_directory_path(&dir).map_err(|()| {
                    Error::Input(format!("{}: not a directory path", dir.display()))
                })?;
                parquet_roots.push(ParquetRoot {
                    url: url.to_string(),
                    tables,
                });
            }
            Input::S3 { bucket, prefix } => {
                let store = s3::store(&bucket)?;
                let listing = s3::list(&store, arg, &bucket, &prefix).await?;
                match (listing.traces.is_empty(), listing.tables.is_empty()) {
                    (true, true) => {
                        return Err(Error::Input(format!(
                            "{arg}: no trace files (executiontrace.*.out) and no Parquet export \
                             (<table>/…/*.parquet) under this prefix"
                        )))
                    }
                    (false, false) => {
                        return Err(Error::Input(format!(
                            "{arg}: holds both trace files and a Parquet export; give the prefix \
                             of one of them"
                        )))
                    }
                    _ => {}
                }
                let store: Arc<dyn ObjectStore> = Arc::new(store);
                for path in listing.traces {
                    traces.push(TraceSource::Object {
                        name: format!("s3://{bucket}/{path}"),
                        store: Arc::clone(&store),
                        path,
                    });
                }
                if !listing.tables.is_empty() {
                    parquet_files += listing.parquet_files;
                    let root = if prefix.is_empty() {
                        format!("s3://{bucket}/")
                    } else {
                        format!("s3://{bucket}/{prefix}/")
                    };
                    parquet_roots.push(ParquetRoot {
                        url: root,
                        tables: listing.tables,
                    });
                }
                let url = url::Url::parse(&format!("s3://{bucket}"))
                    .map_err(|e| Error::Input(format!("{arg}: {e}")))?;
                if !stores.iter().any(|s| s.url == url) {
                    stores.push(Store { url, store });
                }
            }
        }
    }
    let kind = match (traces.is_empty(), parquet_roots.is_empty()) {
        (false, true) => InputKind::Traces,
        (true, false) => InputKind::Parquet,
        (false, false) => {
            return Err(Error::Input(
                "the inputs mix trace files and Parquet exports; query one kind at a time".into(),
            ))
        }
        (true, true) => return Err(Error::Input("no input files".into())),
    };
    let files = match kind {
        InputKind::Traces => traces.len(),
        InputKind::Parquet => parquet_files,
    };
    Ok(Found {
        kind,
        traces,
        parquet_roots,
        stores,
        files,
    })
}

/// A trace file must open (the error is reported now, not in the middle of a query).
fn check_readable(path: &Path) -> Result<(), Error> {
    std::fs::File::open(path)
        .map(drop)
        .map_err(|e| Error::Input(format!("{}: {e}", path.display())))
}

/// Whether a file name found in a directory or a prefix is a trace file's: `*.out`, not hidden
/// (a temporary file is hidden), as `flight-recorder export` takes them.
pub(crate) fn is_trace_name(name: &str) -> bool {
    name.ends_with(dump_files::FILE_SUFFIX) && !name.starts_with('.')
}

/// The trace files under `dir`, recursively (symbolic links to directories are not followed).
fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let path = entry.path();
        if kind.is_dir() {
            walk(&path, files)?;
        } else if entry.file_name().to_str().is_some_and(is_trace_name) {
            files.push(path);
        }
    }
    Ok(())
}

/// The files ending in `.<ext>` under `dir`, recursively.
fn walk_ext(dir: &Path, ext: &str, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            walk_ext(&path, ext, files)?;
        } else if path.extension().is_some_and(|e| e == ext) {
            files.push(path);
        }
    }
    Ok(())
}

/// Registers every table over the Parquet roots: a `ListingTable` over `<root>/<table>/` of
/// each root that has files for it, with the schema of `flight_recorder_parquet::schema` (no
/// partition columns: `service`, `host` and `snapshot_id` are in the files); an empty table
/// for a table no root has.
pub(crate) fn register_parquet(ctx: &SessionContext, roots: &[ParquetRoot]) -> Result<(), Error> {
    for &table in crate::TABLES {
        let schema = flight_recorder_parquet::schema(table)
            .ok_or_else(|| Error::Input(format!("no schema for table {table}")))?;
        let urls = roots
            .iter()
            .filter(|root| root.tables.contains(&table))
            .map(|root| ListingTableUrl::parse(format!("{}{table}/", root.url)))
            .collect::<Result<Vec<_>, _>>()?;
        if urls.is_empty() {
            let empty = MemTable::try_new(schema, vec![vec![]])?;
            ctx.register_table(table, Arc::new(empty))?;
            continue;
        }
        let options =
            ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        let config = ListingTableConfig::new_with_multi_paths(urls)
            .with_listing_options(options)
            .with_schema(schema);
        ctx.register_table(table, Arc::new(ListingTable::try_new(config)?))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls() {
        assert_eq!(
            Input::parse("s3://b/p/q/").unwrap(),
            Input::S3 {
                bucket: "b".into(),
                prefix: "p/q".into()
            }
        );
        assert_eq!(
            Input::parse("s3://b").unwrap(),
            Input::S3 {
                bucket: "b".into(),
                prefix: String::new()
            }
        );
        assert!(matches!(Input::parse("s3:///p"), Err(Error::Input(_))));
        assert!(matches!(Input::parse("gs://b/p"), Err(Error::Input(_))));
        assert!(matches!(
            Input::parse("/no/such/path"),
            Err(Error::Input(_))
        ));
    }

    #[test]
    fn trace_names() {
        assert!(is_trace_name("executiontrace.2026-11-28T02_35_36.123.out"));
        assert!(is_trace_name("trace.out"));
        assert!(!is_trace_name(
            ".executiontrace.2026-11-28T02_35_36.123.out.42.tmp"
        ));
        assert!(!is_trace_name(".hidden.out"));
        assert!(!is_trace_name("x.parquet"));
    }
}
