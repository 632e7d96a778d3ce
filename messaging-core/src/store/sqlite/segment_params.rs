//! Binding a compiled segment predicate's parameters ([`SqlParam`]) with rusqlite: the only
//! place the segment compiler's values meet the SQLite driver.

use rusqlite::ToSql;
use rusqlite::types::{ToSqlOutput, Value as SqliteValue, ValueRef};

use crate::segment::sql::SqlParam;

impl ToSql for SqlParam {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            SqlParam::Null => ValueRef::Null,
            SqlParam::Integer(i) => ValueRef::Integer(*i),
            SqlParam::Real(r) => ValueRef::Real(*r),
            SqlParam::Text(s) => ValueRef::Text(s.as_bytes()),
        }))
    }
}

impl From<&SqlParam> for SqliteValue {
    fn from(param: &SqlParam) -> Self {
        match param {
            SqlParam::Null => SqliteValue::Null,
            SqlParam::Integer(i) => SqliteValue::Integer(*i),
            SqlParam::Real(r) => SqliteValue::Real(*r),
            SqlParam::Text(s) => SqliteValue::Text(s.clone()),
        }
    }
}

impl From<SqlParam> for SqliteValue {
    fn from(param: SqlParam) -> Self {
        match param {
            SqlParam::Text(s) => SqliteValue::Text(s),
            other => SqliteValue::from(&other),
        }
    }
}
