//! The hostile-input comparison (`make bench-hostile`): the same raw-socket attacks against
//! Portico, nginx and HAProxy, each configured for an edge as its docs advise.
//!
//! - [`peers`]: the three configs (and their 1,024-descriptor variants) and processes.
//! - [`attacks`]: the attacks, each giving one table cell.

pub mod attacks;
pub mod peers;

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

/// The markdown table: one row per attack, one column per proxy (`cells[proxy][attack]`).
pub fn table(proxies: &[&str], cells: &[Vec<String>]) -> String {
    let mut s = format!("| attack | {} |\n", proxies.join(" | "));
    s.push_str(&format!("|---|{}\n", "---|".repeat(proxies.len())));
    for (i, a) in ATTACKS.iter().enumerate() {
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
        let t = table(&["Portico", "nginx"], &cells);
        assert_eq!(t.lines().count(), ATTACKS.len() + 2);
        assert!(t.lines().nth(2).unwrap().ends_with("| x | y |"));
        assert!(t.lines().nth(3).unwrap().ends_with("| x | — |"));
    }
}
