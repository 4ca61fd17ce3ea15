//! The Oxford City Council card file as one account: the recurring series `recurring::detect`
//! finds per merchant (merchant = `parse::merchant_key` of the descriptor).
//!     python3 scripts/oxford_tsv.py ../shared/data/oxford-pcard build/oxford.tsv
//!     cargo run -p txclass-core --example oxford_recurring -- build/oxford.tsv 2018-03-01
use std::collections::BTreeMap;
use txclass_core::parse::parse;
use txclass_core::recurring::{civil_from_days, days_from_civil, detect, Charge};

fn day(s: &str) -> Option<i32> {
    let mut it = s.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, d) = (it.next()??, it.next()??, it.next()??);
    Some(days_from_civil(y as i32, m as u32, d as u32))
}

fn date(z: i32) -> String {
    let (y, m, d) = civil_from_days(z);
    format!("{y:04}-{m:02}-{d:02}")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let text = std::fs::read_to_string(&args[1]).expect("the TSV of scripts/oxford_tsv.py");
    let today = args.get(2).and_then(|s| day(s)).unwrap_or_else(|| days_from_civil(2018, 3, 1));
    let mut by: BTreeMap<String, Vec<Charge>> = BTreeMap::new();
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 4 {
            continue;
        }
        let (Some(d), Ok(a)) = (day(f[1]), f[3].parse::<f64>()) else { continue };
        let p = parse(f[2]);
        let key = p.merchant_key();
        names.entry(key.clone()).or_insert_with(|| f[2].to_string());
        by.entry(key).or_default().push(Charge { day: d, amount: a });
    }
    let mut n = 0;
    for (key, charges) in &by {
        for s in detect(charges) {
            n += 1;
            let changes: Vec<String> =
                s.price_changes.iter().map(|c| format!("{:.2} since {}, was {:.2}", c.to, &date(c.day)[..7], c.from)).collect();
            println!(
                "{:28} {:24} {:11} {:>8.2} {:8} {} .. {}  next {}  {:6}  regularity {:.2}  {} charges{}",
                key,
                names[key].chars().take(24).collect::<String>(),
                s.cadence.name(),
                s.amount,
                if s.fixed_amount { "fixed" } else { "variable" },
                date(s.first),
                date(s.last),
                date(s.next_expected),
                s.status(today).name(),
                s.regularity,
                s.charges,
                if changes.is_empty() { String::new() } else { format!("; {}", changes.join("; ")) }
            );
        }
    }
    println!("{n} series over {} merchants", by.len());
}
