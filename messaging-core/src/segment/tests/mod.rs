//! Tests of the segment language: parsing both forms and their errors (`parsing`), the parser's
//! robustness on arbitrary JSON (`properties`), which users compiled rules select in a real
//! SQLite database (`matching`), the size limits that keep every accepted rule one the
//! database can evaluate (`limits`), and the same rules and limits in a real PostgreSQL
//! database with the PostgreSQL dialect (`postgres`).

mod limits;
mod matching;
mod parsing;
mod postgres;
mod properties;
