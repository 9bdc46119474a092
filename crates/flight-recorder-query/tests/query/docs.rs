//! The table definitions of docs/QUERY.md (Athena and Trino, which need every column) are those
//! of the real schema: each is generated here from `flight_recorder_parquet::schema` and must be
//! in the document as it is. `FLIGHT_RECORDER_PRINT_DDL=1` prints them (to update the document).

use datafusion::arrow::datatypes::DataType;

/// The type of a column in Athena's DDL (Hive types). Unsigned integers are written as signed
/// 64-bit ones: Athena reads Parquet's UINT_64 and UINT_32 as `bigint`.
fn athena_type(data_type: &DataType) -> String {
    match data_type {
        DataType::Utf8 => "string".into(),
        DataType::UInt64 | DataType::Int64 | DataType::UInt32 => "bigint".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Timestamp(..) => "timestamp".into(),
        DataType::List(item) => format!("array<{}>", athena_type(item.data_type())),
        other => panic!("no Athena type for {other}"),
    }
}

/// The type of a column in Trino's DDL.
fn trino_type(data_type: &DataType) -> String {
    match data_type {
        DataType::Utf8 => "varchar".into(),
        DataType::UInt64 | DataType::Int64 | DataType::UInt32 => "bigint".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Timestamp(..) => "timestamp(9)".into(),
        DataType::List(item) => format!("array({})", trino_type(item.data_type())),
        other => panic!("no Trino type for {other}"),
    }
}

/// Athena's definition of a table: partitions projected from the paths, under names of their
/// own (the files already have `service` and `date` columns).
pub fn athena_ddl(table: &str) -> String {
    let schema = flight_recorder_parquet::schema(table).unwrap();
    let columns: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| format!("  `{}` {}", f.name(), athena_type(f.data_type())))
        .collect();
    format!(
        "CREATE EXTERNAL TABLE {table} (\n{}\n)\n\
         PARTITIONED BY (`part_service` string, `part_date` string)\n\
         STORED AS PARQUET\n\
         LOCATION 's3://BUCKET/PREFIX/{table}/'\n\
         TBLPROPERTIES (\n  \
           'projection.enabled' = 'true',\n  \
           'projection.part_service.type' = 'injected',\n  \
           'projection.part_date.type' = 'date',\n  \
           'projection.part_date.format' = 'yyyy-MM-dd',\n  \
           'projection.part_date.range' = '2026-01-01,NOW',\n  \
           'storage.location.template' = 's3://BUCKET/PREFIX/{table}/service=${{part_service}}/date=${{part_date}}/'\n\
         );",
        columns.join(",\n")
    )
}

/// Trino's definition of a table (Hive connector, `hive.recursive-directories=true`).
pub fn trino_ddl(table: &str) -> String {
    let schema = flight_recorder_parquet::schema(table).unwrap();
    let columns: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| format!("  \"{}\" {}", f.name(), trino_type(f.data_type())))
        .collect();
    format!(
        "CREATE TABLE hive.traces.{table} (\n{}\n)\n\
         WITH (format = 'PARQUET', external_location = 's3://BUCKET/PREFIX/{table}/');",
        columns.join(",\n")
    )
}

#[test]
fn documented_table_definitions_match_the_schema() {
    let doc_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/QUERY.md");
    let doc = std::fs::read_to_string(doc_path).unwrap();
    let print = std::env::var_os("FLIGHT_RECORDER_PRINT_DDL").is_some();
    let mut missing = Vec::new();
    for table in flight_recorder_query::TABLES {
        for ddl in [athena_ddl(table), trino_ddl(table)] {
            if print {
                println!("{ddl}\n");
            }
            if !doc.contains(&ddl) {
                missing.push(ddl);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/QUERY.md lacks these definitions (or has others):\n\n{}",
        missing.join("\n\n")
    );
}
