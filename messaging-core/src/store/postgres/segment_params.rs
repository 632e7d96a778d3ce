//! Binding a compiled segment predicate's parameters ([`SqlParam`]) with tokio-postgres: the
//! only place the segment compiler's values meet the PostgreSQL driver.
//!
//! The [`Postgres`](crate::segment::sql::Postgres) dialect writes every placeholder with its
//! type (`$1::text`, `$2::int8`, `$3::float8`), so a parameter is asked for as the type its
//! value has; an integer is also taken where a `float8` or an `int4` is asked for, which
//! predicates written by hand may do.
//!
//! PostgreSQL text cannot hold the NUL character, and so no stored key or value holds one: a
//! text with NUL is bound as `NULL`, which equals, contains and starts nothing, instead of
//! failing the whole statement.

use std::error::Error;

use bytes::BytesMut;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

use crate::segment::sql::SqlParam;

type BoxError = Box<dyn Error + Sync + Send>;

impl ToSql for SqlParam {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match (self, ty) {
            (SqlParam::Null, _) => Ok(IsNull::Yes),
            (SqlParam::Text(text), _) if text.contains('\0') => Ok(IsNull::Yes),
            (SqlParam::Text(text), &Type::TEXT | &Type::VARCHAR) => text.as_str().to_sql(ty, out),
            (SqlParam::Integer(n), &Type::INT8) => n.to_sql(ty, out),
            (SqlParam::Integer(n), &Type::INT4) => i32::try_from(*n)?.to_sql(ty, out),
            // Exact up to 2^53, as SQLite compares an integer with a real.
            (SqlParam::Integer(n), &Type::FLOAT8) => (*n as f64).to_sql(ty, out),
            (SqlParam::Real(r), &Type::FLOAT8) => r.to_sql(ty, out),
            (param, ty) => {
                Err(format!("a segment parameter {param:?} cannot be bound as {ty}").into())
            }
        }
    }

    fn accepts(ty: &Type) -> bool {
        matches!(
            *ty,
            Type::TEXT | Type::VARCHAR | Type::INT8 | Type::INT4 | Type::FLOAT8
        )
    }

    to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound(param: SqlParam, ty: &Type) -> Result<Option<Vec<u8>>, BoxError> {
        let mut out = BytesMut::new();
        Ok(match param.to_sql_checked(ty, &mut out)? {
            IsNull::Yes => None,
            IsNull::No => Some(out.to_vec()),
        })
    }

    #[test]
    fn each_value_is_bound_as_the_type_its_placeholder_names() {
        assert_eq!(
            bound(SqlParam::Text("ab".into()), &Type::TEXT).unwrap(),
            Some(b"ab".to_vec())
        );
        assert_eq!(
            bound(SqlParam::Integer(1), &Type::INT8).unwrap(),
            Some(1i64.to_be_bytes().to_vec())
        );
        assert_eq!(
            bound(SqlParam::Integer(2), &Type::FLOAT8).unwrap(),
            Some(2f64.to_be_bytes().to_vec())
        );
        assert_eq!(
            bound(SqlParam::Real(2.5), &Type::FLOAT8).unwrap(),
            Some(2.5f64.to_be_bytes().to_vec())
        );
        assert_eq!(bound(SqlParam::Null, &Type::INT8).unwrap(), None);
        assert_eq!(
            bound(SqlParam::Text("a\0b".into()), &Type::TEXT).unwrap(),
            None
        );
    }

    #[test]
    fn a_value_of_another_type_is_refused_not_converted() {
        assert!(bound(SqlParam::Real(2.5), &Type::INT8).is_err());
        assert!(bound(SqlParam::Text("1".into()), &Type::INT8).is_err());
        assert!(bound(SqlParam::Integer(1 << 40), &Type::INT4).is_err());
        assert!(bound(SqlParam::Integer(1), &Type::JSONB).is_err());
    }
}
