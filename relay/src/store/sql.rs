//! One seam over the two databases the relay runs on: SQLite (rusqlite, embedded) and
//! PostgreSQL (tokio-postgres, shared by several relay nodes).
//!
//! Our own seam rather than `sqlx::any`: the desk's decisions are synchronous closures run in
//! one transaction (`Db::write`), and keeping them synchronous keeps them simple and the
//! SQLite path as fast as it was; the seam is four calls (`execute`, `query`, `query_opt`,
//! `query_one`) and one value type, so every query in `rows` is written once. The SQL is
//! written in the dialect both accept, with SQLite's numbered placeholders (`?1`), which are
//! rewritten to PostgreSQL's (`$1`) on the way. Values are what both databases have: integers,
//! text, bytes and NULL (booleans are stored as 0/1 integers on both, as SQLite always did).

use super::StoreError;

/// A value passed to or read from the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// NULL.
    Null,
    /// Any integer (booleans as 0/1).
    Int(i64),
    /// Text.
    Text(String),
    /// Bytes (SQLite BLOB, PostgreSQL BYTEA).
    Blob(Vec<u8>),
}

/// Something that can be bound to a placeholder.
pub trait Param: Sync {
    /// As a database value.
    fn value(&self) -> Value;
}

macro_rules! int_param {
    ($($t:ty),*) => {$(
        impl Param for $t {
            fn value(&self) -> Value {
                Value::Int(i64::from(*self))
            }
        }
    )*};
}
int_param!(i64, i32, u32, u16, u8);

impl Param for bool {
    fn value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}
impl Param for str {
    fn value(&self) -> Value {
        Value::Text(self.to_owned())
    }
}
impl Param for String {
    fn value(&self) -> Value {
        Value::Text(self.clone())
    }
}
impl Param for [u8] {
    fn value(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}
impl<const N: usize> Param for [u8; N] {
    fn value(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}
impl<T: Param + ?Sized> Param for &T {
    fn value(&self) -> Value {
        (**self).value()
    }
}
impl<T: Param> Param for Option<T> {
    fn value(&self) -> Value {
        self.as_ref().map_or(Value::Null, Param::value)
    }
}

/// A value read back into a Rust type.
pub trait FromValue: Sized {
    /// Converts, or says what was found instead.
    fn from_value(v: Value) -> Result<Self, String>;
}

impl FromValue for i64 {
    fn from_value(v: Value) -> Result<Self, String> {
        match v {
            Value::Int(i) => Ok(i),
            other => Err(format!("an integer expected, {other:?} found")),
        }
    }
}
impl FromValue for u32 {
    fn from_value(v: Value) -> Result<Self, String> {
        let i = i64::from_value(v)?;
        u32::try_from(i).map_err(|_| format!("{i} is out of range"))
    }
}
impl FromValue for bool {
    fn from_value(v: Value) -> Result<Self, String> {
        Ok(i64::from_value(v)? != 0)
    }
}
impl FromValue for String {
    fn from_value(v: Value) -> Result<Self, String> {
        match v {
            Value::Text(s) => Ok(s),
            other => Err(format!("text expected, {other:?} found")),
        }
    }
}
impl FromValue for Vec<u8> {
    fn from_value(v: Value) -> Result<Self, String> {
        match v {
            Value::Blob(b) => Ok(b),
            other => Err(format!("bytes expected, {other:?} found")),
        }
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: Value) -> Result<Self, String> {
        match v {
            Value::Null => Ok(None),
            v => T::from_value(v).map(Some),
        }
    }
}

/// One result row, its values in the order of the query's columns.
#[derive(Debug, Clone)]
pub struct Row(Vec<Value>);

impl Row {
    /// The value of column `i` (from 0).
    ///
    /// # Errors
    /// No such column, or its value is not a `T` (`StoreError::Corrupt`).
    pub fn get<T: FromValue>(&self, i: usize) -> Result<T, StoreError> {
        let v = self.0.get(i).cloned().ok_or_else(|| StoreError::Corrupt(format!("no column {i}")))?;
        T::from_value(v).map_err(|e| StoreError::Corrupt(format!("column {i}: {e}")))
    }
}

/// A transaction on either database: what every function in `rows` takes.
pub struct Tx<'a> {
    inner: Inner<'a>,
}

enum Inner<'a> {
    Sqlite(&'a rusqlite::Transaction<'a>),
    Postgres { tx: deadpool_postgres::Transaction<'a>, rt: &'a tokio::runtime::Handle },
}

impl<'a> Tx<'a> {
    pub(super) fn sqlite(tx: &'a rusqlite::Transaction<'a>) -> Tx<'a> {
        Tx { inner: Inner::Sqlite(tx) }
    }

    pub(super) fn postgres(tx: deadpool_postgres::Transaction<'a>, rt: &'a tokio::runtime::Handle) -> Tx<'a> {
        Tx { inner: Inner::Postgres { tx, rt } }
    }

    /// Is this PostgreSQL (for the few places the dialects differ)?
    #[must_use]
    pub fn is_postgres(&self) -> bool {
        matches!(self.inner, Inner::Postgres { .. })
    }

    /// Commits a PostgreSQL transaction (a SQLite one is committed by its owner).
    pub(super) fn commit(self) -> Result<(), StoreError> {
        match self.inner {
            Inner::Sqlite(_) => Ok(()),
            Inner::Postgres { tx, rt } => Ok(rt.block_on(tx.commit())?),
        }
    }

    /// Runs one statement; returns the number of rows it changed.
    ///
    /// # Errors
    /// The database refused it.
    pub fn execute(&self, sql: &str, args: &[&dyn Param]) -> Result<usize, StoreError> {
        match &self.inner {
            Inner::Sqlite(tx) => {
                let mut stmt = tx.prepare_cached(sql)?;
                bind_sqlite(&mut stmt, args)?;
                Ok(stmt.raw_execute()?)
            }
            Inner::Postgres { tx, rt } => {
                let values = pg_values(args);
                rt.block_on(async {
                    let stmt = tx.prepare_cached(&postgres_placeholders(sql)).await?;
                    let n = tx.execute(&stmt, &pg_refs(&values)).await?;
                    Ok(usize::try_from(n).unwrap_or(usize::MAX))
                })
            }
        }
    }

    /// Runs a query; returns every row.
    ///
    /// # Errors
    /// The database refused it.
    pub fn query(&self, sql: &str, args: &[&dyn Param]) -> Result<Vec<Row>, StoreError> {
        match &self.inner {
            Inner::Sqlite(tx) => {
                let mut stmt = tx.prepare_cached(sql)?;
                bind_sqlite(&mut stmt, args)?;
                let columns = stmt.column_count();
                let mut rows = stmt.raw_query();
                let mut out = Vec::new();
                while let Some(r) = rows.next()? {
                    let mut values = Vec::with_capacity(columns);
                    for i in 0..columns {
                        values.push(match r.get_ref(i)? {
                            rusqlite::types::ValueRef::Null => Value::Null,
                            rusqlite::types::ValueRef::Integer(i) => Value::Int(i),
                            rusqlite::types::ValueRef::Real(f) => return Err(StoreError::Corrupt(format!("a real number {f} stored"))),
                            rusqlite::types::ValueRef::Text(t) => {
                                Value::Text(String::from_utf8(t.to_vec()).map_err(|e| StoreError::Corrupt(e.to_string()))?)
                            }
                            rusqlite::types::ValueRef::Blob(b) => Value::Blob(b.to_vec()),
                        });
                    }
                    out.push(Row(values));
                }
                Ok(out)
            }
            Inner::Postgres { tx, rt } => {
                let values = pg_values(args);
                let rows = rt.block_on(async {
                    let stmt = tx.prepare_cached(&postgres_placeholders(sql)).await?;
                    tx.query(&stmt, &pg_refs(&values)).await
                })?;
                rows.iter().map(row_from_postgres).collect()
            }
        }
    }

    /// Runs a query; returns its first row, if any.
    ///
    /// # Errors
    /// The database refused it.
    pub fn query_opt(&self, sql: &str, args: &[&dyn Param]) -> Result<Option<Row>, StoreError> {
        Ok(self.query(sql, args)?.into_iter().next())
    }

    /// Runs a query that returns one row (a count, an id `RETURNING`).
    ///
    /// # Errors
    /// The database refused it, or it returned no row.
    pub fn query_one(&self, sql: &str, args: &[&dyn Param]) -> Result<Row, StoreError> {
        self.query_opt(sql, args)?.ok_or_else(|| StoreError::Corrupt(format!("no row from {sql}")))
    }

    /// Runs several statements without arguments (migrations).
    pub(super) fn batch(&self, sql: &str) -> Result<(), StoreError> {
        match &self.inner {
            Inner::Sqlite(tx) => Ok(tx.execute_batch(sql)?),
            Inner::Postgres { tx, rt } => Ok(rt.block_on(tx.batch_execute(sql))?),
        }
    }
}

fn bind_sqlite(stmt: &mut rusqlite::CachedStatement<'_>, args: &[&dyn Param]) -> Result<(), StoreError> {
    for (i, arg) in args.iter().enumerate() {
        let value = match arg.value() {
            Value::Null => rusqlite::types::Value::Null,
            Value::Int(n) => rusqlite::types::Value::Integer(n),
            Value::Text(t) => rusqlite::types::Value::Text(t),
            Value::Blob(b) => rusqlite::types::Value::Blob(b),
        };
        stmt.raw_bind_parameter(i + 1, value)?;
    }
    Ok(())
}

/// `?1` → `$1` (a `?` not followed by a digit is left alone).
#[must_use]
pub fn postgres_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) { '$' } else { c });
    }
    out
}

fn pg_values(args: &[&dyn Param]) -> Vec<Value> {
    args.iter().map(|a| a.value()).collect()
}

fn pg_refs(values: &[Value]) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
    values.iter().map(|v| v as &(dyn tokio_postgres::types::ToSql + Sync)).collect()
}

fn row_from_postgres(row: &tokio_postgres::Row) -> Result<Row, StoreError> {
    use tokio_postgres::types::Type;
    let mut values = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let ty = column.type_();
        let value = if *ty == Type::INT8 {
            row.try_get::<_, Option<i64>>(i)?.map(Value::Int)
        } else if *ty == Type::INT4 {
            row.try_get::<_, Option<i32>>(i)?.map(|n| Value::Int(n.into()))
        } else if *ty == Type::INT2 {
            row.try_get::<_, Option<i16>>(i)?.map(|n| Value::Int(n.into()))
        } else if *ty == Type::BOOL {
            row.try_get::<_, Option<bool>>(i)?.map(|b| Value::Int(b.into()))
        } else if *ty == Type::BYTEA {
            row.try_get::<_, Option<Vec<u8>>>(i)?.map(Value::Blob)
        } else if [Type::TEXT, Type::VARCHAR, Type::NAME, Type::BPCHAR].contains(ty) {
            row.try_get::<_, Option<String>>(i)?.map(Value::Text)
        } else {
            return Err(StoreError::Corrupt(format!("column {} has the unexpected type {ty}", column.name())));
        };
        values.push(value.unwrap_or(Value::Null));
    }
    Ok(Row(values))
}

impl tokio_postgres::types::ToSql for Value {
    fn to_sql(
        &self,
        ty: &tokio_postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        use tokio_postgres::types::Type;
        match self {
            Value::Null => Ok(tokio_postgres::types::IsNull::Yes),
            Value::Int(n) if *ty == Type::INT8 => n.to_sql(ty, out),
            Value::Int(n) if *ty == Type::INT4 => i32::try_from(*n)?.to_sql(ty, out),
            Value::Int(n) if *ty == Type::INT2 => i16::try_from(*n)?.to_sql(ty, out),
            Value::Int(n) if *ty == Type::BOOL => (*n != 0).to_sql(ty, out),
            // A number compared with or appended to text (`'%,' || ?1 || ',%'`).
            Value::Int(n) if *ty == Type::TEXT || *ty == Type::VARCHAR => n.to_string().to_sql(ty, out),
            Value::Text(t) => t.to_sql(ty, out),
            Value::Blob(b) => b.to_sql(ty, out),
            Value::Int(_) => Err(format!("an integer cannot be bound to a {ty} parameter").into()),
        }
    }

    fn accepts(_: &tokio_postgres::types::Type) -> bool {
        true // `to_sql` decides by the parameter's type and says no clearly
    }

    tokio_postgres::types::to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_rewritten_for_postgres() {
        assert_eq!(postgres_placeholders("UPDATE t SET a = ?2 WHERE id = ?1"), "UPDATE t SET a = $2 WHERE id = $1");
        assert_eq!(postgres_placeholders("SELECT '?' WHERE x = ?10"), "SELECT '?' WHERE x = $10");
    }

    #[test]
    fn values_convert_both_ways_and_say_what_went_wrong() {
        assert_eq!(true.value(), Value::Int(1));
        assert_eq!(Some("x").value(), Value::Text("x".into()));
        assert_eq!(None::<i64>.value(), Value::Null);
        let row = Row(vec![Value::Int(7), Value::Null, Value::Text("t".into())]);
        assert_eq!(row.get::<i64>(0).unwrap(), 7);
        assert!(row.get::<bool>(0).unwrap());
        assert_eq!(row.get::<Option<String>>(1).unwrap(), None);
        let err = row.get::<i64>(2).unwrap_err().to_string();
        assert!(err.contains("column 2: an integer expected"), "{err}");
        assert!(row.get::<i64>(3).unwrap_err().to_string().contains("no column 3"));
        assert!(Row(vec![Value::Int(-1)]).get::<u32>(0).is_err());
    }
}
