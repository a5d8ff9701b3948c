//! The hostile-input comparison (`make bench-hostile`): the same raw-socket attacks against
//! Portico, nginx and HAProxy, each configured for an edge as its docs advise.
//!
//! - [`peers`]: the three configs (and their 1,024-descriptor variants) and processes.
//! - [`attacks`]: the attacks on the plain listener, each giving one table cell.
//! - [`tls_attacks`]: the attacks on the TLS listener (handshakes, HTTP/2 frames), each a
//!   measurement (in the JSON) and a cell.

pub mod attacks;
pub mod peers;
pub mod tls_attacks;

/// The rows of the table, in order: the attack as the table names it.
pub const ATTACKS: [&str; 9] = [
    "slowloris (one header byte every 5 s): closed after",
    "idle keep-alive connection: closed after",
    "300 unterminated 1 MB heads: RSS before → 2 s after (still open; answers)",
    "a 1,000 KiB header: answer",
    "a 9 KB request line: answer",
    "Content-Length + Transfer-Encoding: answer, forwarded?",
    "two pipelined GETs: both answered?",
    "1,100 idle connections at a 1,024-fd limit, then a request",
    "12 POSTs stalling their body (10 of 100 bytes): answers; origin ejected?",
];

/// The rows of the TLS and HTTP/2 table, in order (see [`tls_attacks`] for the numbers).
pub const TLS_ATTACKS: [&str; 5] = [
    "500 TCP connections that never start a TLS handshake: held past the 10 s deadline (+2 s); closed after",
    "legitimate TLS clients (new connection per GET, 4 at once, 5 s) while 500 such connections are open; alone",
    "100 TLS connections, h2 by ALPN, then silent (no preface): held past the 60 s idle timeout (+2 s); closed after",
    "rapid reset: GET + RST_STREAM pairs on one h2 connection (≤ 10,000): taken before GOAWAY/close; origin requests",
    "CONTINUATION flood: a header block that never ends (4 KiB frames, 1 ms apart, ≤ 4,000): frames taken before the cut; RSS",
];

/// The markdown table: one row per attack in `rows`, one column per proxy
/// (`cells[proxy][attack]`).
pub fn table(rows: &[&str], proxies: &[&str], cells: &[Vec<String>]) -> String {
    let mut s = format!("| attack | {} |\n", proxies.join(" | "));
    s.push_str(&format!("|---|{}\n", "---|".repeat(proxies.len())));
    for (i, a) in rows.iter().enumerate() {
        let row: Vec<&str> = cells
            .iter()
            .map(|c| c.get(i).map_or("—", String::as_str))
            .collect();
        s.push_str(&format!("| {a} | {} |\n", row.join(" | ")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_a_row_per_attack_and_a_column_per_proxy() {
        let cells = vec![vec!["x".to_string(); ATTACKS.len()], vec!["y".to_string()]];
        let t = table(&ATTACKS, &["Portico", "nginx"], &cells);
        assert_eq!(t.lines().count(), ATTACKS.len() + 2);
        assert!(t.lines().nth(2).unwrap().ends_with("| x | y |"));
        assert!(t.lines().nth(3).unwrap().ends_with("| x | — |"));
    }

    #[test]
    fn the_tls_rows_name_the_sizes_the_attacks_use() {
        use tls_attacks::*;
        assert!(TLS_ATTACKS[0].starts_with(&format!("{SILENT_CONNECTIONS} ")));
        assert!(TLS_ATTACKS[1].contains(&format!(" {SILENT_CONNECTIONS} ")));
        assert!(TLS_ATTACKS[2].starts_with(&format!("{IDLE_H2_CONNECTIONS} ")));
        assert!(TLS_ATTACKS[3].contains(&format!(
            "{},{:03}",
            RAPID_RESET_STREAMS / 1000,
            RAPID_RESET_STREAMS % 1000
        )));
        assert!(TLS_ATTACKS[4].contains(&format!(
            "{},{:03}",
            CONTINUATION_FRAMES / 1000,
            CONTINUATION_FRAMES % 1000
        )));
        assert!(TLS_ATTACKS[4].contains(&format!("{} KiB", CONTINUATION_BYTES / 1024)));
    }
}
