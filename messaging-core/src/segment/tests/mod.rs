//! Tests of the segment language: parsing both forms and their errors (`parsing`), the parser's
//! robustness on arbitrary JSON (`properties`), which users compiled rules select in a real
//! SQLite database (`matching`), and the size limits that keep every accepted rule one the
//! database can evaluate (`limits`).

mod limits;
mod matching;
mod parsing;
mod properties;
