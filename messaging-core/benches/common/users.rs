//! The users the ingestion benchmarks load: N rows of phone, name, consent, JSON attributes
//! and time zone, with phones in scrambled order as real exports have them.

#![allow(dead_code)]

use std::io::{BufWriter, Write};
use std::path::Path;

const CITIES: [&str; 8] = [
    "Colombo", "Kandy", "Galle", "London", "Mumbai", "Berlin", "Austin", "Paris",
];
const ZONES: [&str; 4] = [
    "Asia/Colombo",
    "Europe/London",
    "Asia/Kolkata",
    "America/Chicago",
];

pub struct Row {
    pub phone: String,
    pub name: String,
    pub consent: &'static str,
    pub attributes: String,
    pub timezone: &'static str,
}

pub fn row(i: u64, n: u64) -> Row {
    // A bijection on 0..10^8 scatters phones so inserts land all over the index.
    let scrambled = (i * 48_271 + 12_345) % 100_000_000;
    let _ = n;
    Row {
        phone: format!("+9471{scrambled:08}"),
        name: format!("User {i}"),
        consent: if i % 10 == 0 { "STOPPED" } else { "STARTED" },
        attributes: format!(
            "{{\"city\": \"{}\", \"age\": {}, \"tier\": \"{}\"}}",
            CITIES[(i % 8) as usize],
            18 + i % 60,
            if i % 3 == 0 { "gold" } else { "silver" }
        ),
        timezone: ZONES[(i % 4) as usize],
    }
}

pub fn write_csv(path: &Path, n: u64) {
    let mut out = BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(out, "phone,name,consent_state,attributes,timezone").unwrap();
    for i in 0..n {
        let r = row(i, n);
        let attributes = r.attributes.replace('"', "\"\"");
        writeln!(
            out,
            "{},{},{},\"{}\",{}",
            r.phone, r.name, r.consent, attributes, r.timezone
        )
        .unwrap();
    }
    out.flush().unwrap();
}
