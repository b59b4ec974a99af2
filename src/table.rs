//! Tables on transactions: rows keyed by an integer primary key, unique and
//! non-unique secondary indexes on single columns, all kept consistent by
//! doing every change of a row and its index entries in one transaction.
//!
//! Keys come from the table codec (`codec::table`):
//!
//! ```text
//! row                 t{table}_r{pk}                → the row's values
//! unique index        t{table}_i{index}{value}      → pk
//! non-unique index    t{table}_i{index}{value}{pk}  → (empty)
//! schema              m_table_{name}                → the table's schema
//! ```
//!
//! A unique violation is a typed error ([`TableError::DuplicateKey`]); two
//! transactions inserting the same unique value concurrently both write the
//! index key, so one of them meets the other's lock or commit and aborts:
//! uniqueness holds under snapshot isolation without any extra locking.
//! A non-unique lookup is a prefix seek over the index (`lookup_non_unique`).

use crate::client::{Transaction, TxnClient, TxnError};
use crate::codec::table::{self as codec, IndexValue};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// One column value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Datum {
    Int(i64),
    Text(String),
}

impl Datum {
    fn index_value(&self) -> IndexValue {
        match self {
            Datum::Int(v) => IndexValue::Int(*v),
            Datum::Text(s) => IndexValue::Bytes(s.as_bytes().to_vec()),
        }
    }
}

impl std::fmt::Display for Datum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Datum::Int(v) => write!(f, "{v}"),
            Datum::Text(s) => write!(f, "{s:?}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexSchema {
    pub id: i64,
    pub name: String,
    /// The indexed column (a position in [`TableSchema::columns`]).
    pub column: usize,
    pub unique: bool,
}

/// A table: an integer primary key and named value columns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSchema {
    pub id: i64,
    pub name: String,
    /// The value columns (the primary key is not one of them).
    pub columns: Vec<String>,
    pub indexes: Vec<IndexSchema>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TableError {
    #[error("duplicate primary key {0}")]
    DuplicatePrimaryKey(i64),
    #[error("duplicate value {value} for unique index {index} (held by row {holder})")]
    DuplicateKey { index: String, value: Datum, holder: i64 },
    #[error("no row with primary key {0}")]
    RowNotFound(i64),
    #[error("table {0} has no index named {1:?}")]
    NoSuchIndex(String, String),
    #[error("row has {got} values; table {table} has {want} columns")]
    WrongArity { table: String, got: usize, want: usize },
    #[error("table {0} already exists")]
    TableExists(String),
    #[error("no table named {0}")]
    NoSuchTable(String),
    #[error("invalid schema: {0}")]
    InvalidSchema(String),
    #[error("corrupt table data: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Txn(#[from] TxnError),
}

pub type Row = Vec<Datum>;

fn schema_key(name: &str) -> Vec<u8> {
    format!("m_table_{name}").into_bytes()
}

fn decode_row(bytes: &[u8]) -> Result<Row, TableError> {
    bincode::deserialize(bytes).map_err(|e| TableError::Corrupt(format!("row: {e}")))
}

impl TableSchema {
    /// Checks the schema makes sense: column names unique, indexes on
    /// existing columns with distinct ids and names.
    pub fn validate(&self) -> Result<(), TableError> {
        let invalid = |m: String| Err(TableError::InvalidSchema(m));
        let mut names = std::collections::BTreeSet::new();
        if let Some(dup) = self.columns.iter().find(|c| !names.insert(c.as_str())) {
            return invalid(format!("column {dup:?} appears twice"));
        }
        let (mut ids, mut index_names) = (std::collections::BTreeSet::new(), std::collections::BTreeSet::new());
        for index in &self.indexes {
            if index.column >= self.columns.len() {
                return invalid(format!("index {:?} is on column {}, but the table has {}", index.name, index.column, self.columns.len()));
            }
            if !ids.insert(index.id) || !index_names.insert(index.name.as_str()) {
                return invalid(format!("index {:?} (id {}) is not the only one with its name or id", index.name, index.id));
            }
        }
        Ok(())
    }

    fn index(&self, name: &str) -> Result<&IndexSchema, TableError> {
        self.indexes.iter().find(|i| i.name == name).ok_or_else(|| TableError::NoSuchIndex(self.name.clone(), name.into()))
    }

    fn check_arity(&self, row: &Row) -> Result<(), TableError> {
        if row.len() != self.columns.len() {
            return Err(TableError::WrongArity { table: self.name.clone(), got: row.len(), want: self.columns.len() });
        }
        Ok(())
    }

    /// The row with primary key `pk`, as `txn` sees it.
    pub async fn get(&self, txn: &Transaction<'_>, pk: i64) -> Result<Option<Row>, TableError> {
        match txn.get(&codec::row_key(self.id, pk)).await? {
            Some(bytes) => Ok(Some(decode_row(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Inserts a row and its index entries. `DuplicatePrimaryKey` /
    /// `DuplicateKey` if the pk or a unique value is taken.
    pub async fn insert(&self, txn: &mut Transaction<'_>, pk: i64, row: Row) -> Result<(), TableError> {
        self.check_arity(&row)?;
        if self.get(txn, pk).await?.is_some() {
            return Err(TableError::DuplicatePrimaryKey(pk));
        }
        for index in self.indexes.iter().filter(|i| i.unique) {
            self.check_unique(txn, index, &row[index.column], pk).await?;
        }
        self.write_row(txn, pk, &row);
        for index in &self.indexes {
            self.put_entry(txn, index, &row[index.column], pk);
        }
        Ok(())
    }

    /// Replaces row `pk`: index entries of changed values move with it.
    pub async fn update(&self, txn: &mut Transaction<'_>, pk: i64, row: Row) -> Result<(), TableError> {
        self.check_arity(&row)?;
        let old = self.get(txn, pk).await?.ok_or(TableError::RowNotFound(pk))?;
        for index in &self.indexes {
            let (was, now) = (&old[index.column], &row[index.column]);
            if was == now {
                continue;
            }
            if index.unique {
                self.check_unique(txn, index, now, pk).await?;
            }
            self.delete_entry(txn, index, was, pk);
            self.put_entry(txn, index, now, pk);
        }
        self.write_row(txn, pk, &row);
        Ok(())
    }

    /// Deletes row `pk` and its index entries; false if there was none.
    pub async fn delete(&self, txn: &mut Transaction<'_>, pk: i64) -> Result<bool, TableError> {
        let Some(old) = self.get(txn, pk).await? else { return Ok(false) };
        for index in &self.indexes {
            self.delete_entry(txn, index, &old[index.column], pk);
        }
        txn.delete(&codec::row_key(self.id, pk));
        Ok(true)
    }

    /// The row whose unique index `index` holds `value`.
    pub async fn get_by_unique(&self, txn: &Transaction<'_>, index: &str, value: &Datum) -> Result<Option<(i64, Row)>, TableError> {
        let index = self.index(index)?;
        let Some(pk) = txn.get(&codec::unique_index_key(self.id, index.id, &value.index_value())).await? else { return Ok(None) };
        let pk = codec::decode_pk(&pk).map_err(|e| TableError::Corrupt(format!("unique index {}: {e}", index.name)))?;
        let row = self.get(txn, pk).await?.ok_or_else(|| TableError::Corrupt(format!("unique index {} names missing row {pk}", index.name)))?;
        Ok(Some((pk, row)))
    }

    /// Up to `limit` rows whose non-unique index `index` holds `value`, by
    /// pk: a prefix seek over the index.
    pub async fn find(&self, txn: &Transaction<'_>, index: &str, value: &Datum, limit: usize) -> Result<Vec<(i64, Row)>, TableError> {
        let index = self.index(index)?;
        let pks = if index.unique {
            match self.get_by_unique(txn, &index.name, value).await? {
                Some((pk, row)) => return Ok(vec![(pk, row)]),
                None => vec![],
            }
        } else {
            let prefix = codec::index_prefix(self.id, index.id, &value.index_value());
            let entries = txn.scan(&prefix, &prefix_end(&prefix), limit).await?;
            codec::lookup_non_unique(entries.iter().map(|(k, _)| k), self.id, index.id, &value.index_value(), limit)
                .map_err(|e| TableError::Corrupt(format!("index {}: {e}", index.name)))?
        };
        let mut rows = Vec::with_capacity(pks.len());
        for pk in pks {
            let row = self.get(txn, pk).await?.ok_or_else(|| TableError::Corrupt(format!("index {} names missing row {pk}", index.name)))?;
            rows.push((pk, row));
        }
        Ok(rows)
    }

    /// Up to `limit` rows in pk order.
    pub async fn scan(&self, txn: &Transaction<'_>, limit: usize) -> Result<Vec<(i64, Row)>, TableError> {
        let prefix = codec::row_prefix(self.id);
        let mut rows = Vec::new();
        for (key, value) in txn.scan(&prefix, &prefix_end(&prefix), limit).await? {
            let (_, pk) = codec::decode_row_key(&key).map_err(|e| TableError::Corrupt(format!("row key: {e}")))?;
            rows.push((pk, decode_row(&value)?));
        }
        Ok(rows)
    }

    /// Every entry of `index`, as (value's encoded key, pk), in key order: what
    /// a consistency check walks.
    pub async fn index_entries(&self, txn: &Transaction<'_>, index: &str) -> Result<Vec<(Vec<u8>, i64)>, TableError> {
        let index = self.index(index)?;
        let prefix = codec::index_space_prefix(self.id, index.id);
        let mut out = Vec::new();
        for (key, value) in txn.scan(&prefix, &prefix_end(&prefix), usize::MAX).await? {
            let pk = if index.unique {
                codec::decode_pk(&value).map_err(|e| TableError::Corrupt(format!("unique index {}: {e}", index.name)))?
            } else {
                codec::decode_non_unique_index_key(&key).map_err(|e| TableError::Corrupt(format!("index {}: {e}", index.name)))?.3
            };
            out.push((key, pk));
        }
        Ok(out)
    }

    /// The keys a row's index entry of `value` lives at.
    pub fn entry_key(&self, index: &IndexSchema, value: &Datum, pk: i64) -> Vec<u8> {
        if index.unique {
            codec::unique_index_key(self.id, index.id, &value.index_value())
        } else {
            codec::non_unique_index_key(self.id, index.id, &value.index_value(), pk)
        }
    }

    async fn check_unique(&self, txn: &Transaction<'_>, index: &IndexSchema, value: &Datum, pk: i64) -> Result<(), TableError> {
        if let Some(holder) = txn.get(&codec::unique_index_key(self.id, index.id, &value.index_value())).await? {
            let holder = codec::decode_pk(&holder).map_err(|e| TableError::Corrupt(format!("unique index {}: {e}", index.name)))?;
            if holder != pk {
                return Err(TableError::DuplicateKey { index: index.name.clone(), value: value.clone(), holder });
            }
        }
        Ok(())
    }

    fn write_row(&self, txn: &mut Transaction<'_>, pk: i64, row: &Row) {
        txn.set(&codec::row_key(self.id, pk), &bincode::serialize(row).expect("rows serialize"));
    }

    fn put_entry(&self, txn: &mut Transaction<'_>, index: &IndexSchema, value: &Datum, pk: i64) {
        let value_bytes = if index.unique { codec::encode_pk(pk) } else { vec![] };
        txn.set(&self.entry_key(index, value, pk), &value_bytes);
    }

    fn delete_entry(&self, txn: &mut Transaction<'_>, index: &IndexSchema, value: &Datum, pk: i64) {
        txn.delete(&self.entry_key(index, value, pk));
    }
}

/// The first key after every key starting with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![]
}

/// Creates a table (its schema is stored in the cluster); `TableExists` if a
/// table of that name exists.
pub async fn create_table(client: &TxnClient, schema: &TableSchema) -> Result<(), TableError> {
    schema.validate()?;
    let mut txn = client.begin().await?;
    if txn.get(&schema_key(&schema.name)).await?.is_some() {
        return Err(TableError::TableExists(schema.name.clone()));
    }
    txn.set(&schema_key(&schema.name), &bincode::serialize(schema).expect("schemas serialize"));
    txn.commit().await?;
    Ok(())
}

/// The schema of table `name`.
pub async fn open_table(client: &TxnClient, name: &str) -> Result<TableSchema, TableError> {
    let txn = client.begin().await?;
    let bytes = txn.get(&schema_key(name)).await?.ok_or_else(|| TableError::NoSuchTable(name.into()))?;
    bincode::deserialize(&bytes).map_err(|e| TableError::Corrupt(format!("schema of {name}: {e}")))
}
