//! The result of a query as a table, CSV or JSON.

use std::io::Write;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::dataframe::DataFrame;
use futures::StreamExt;

use crate::Error;

/// How to print a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A table for people (arrow's pretty printer); the whole result is held to size the
    /// columns.
    Table,
    /// CSV with a header line, written as the rows come.
    Csv,
    /// A JSON array of objects, one per row, every column present (`null` for nulls), written
    /// as the rows come.
    Json,
}

/// Runs the query and writes its result.
pub async fn write(frame: DataFrame, format: Format, out: &mut impl Write) -> Result<(), Error> {
    let schema = frame.schema().inner().clone();
    let mut stream = frame.execute_stream().await?;
    match format {
        Format::Table => {
            let mut batches: Vec<RecordBatch> = Vec::new();
            while let Some(batch) = stream.next().await {
                batches.push(batch?);
            }
            let table = datafusion::arrow::util::pretty::pretty_format_batches_with_schema(
                schema, &batches,
            )?;
            writeln!(out, "{table}")?;
        }
        Format::Csv => {
            let mut writer = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut *out);
            let mut wrote = false;
            while let Some(batch) = stream.next().await {
                writer.write(&batch?)?;
                wrote = true;
            }
            if !wrote {
                writer.write(&RecordBatch::new_empty(schema))?;
            }
        }
        Format::Json => {
            let mut writer = datafusion::arrow::json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, datafusion::arrow::json::writer::JsonArray>(&mut *out);
            while let Some(batch) = stream.next().await {
                writer.write(&batch?)?;
            }
            writer.finish()?;
            drop(writer);
            writeln!(out)?;
        }
    }
    Ok(())
}
