//! Tests of the segment language: parsing both forms and their errors (`parsing`), the parser's
//! robustness on arbitrary JSON (`properties`), and which users compiled rules select in a real
//! SQLite database (`matching`).

mod matching;
mod parsing;
mod properties;
