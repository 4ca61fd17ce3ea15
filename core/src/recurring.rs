//! Recurring payments: series of charges at one merchant on a schedule.
//!
//! Input: the charges of one account at one merchant (day number, amount). Output: the series
//! they contain, each with its cadence, a regularity score, the typical amount (fixed or
//! variable), price changes, first and last charge, the next expected date and amount, and a
//! status on a given day.
//!
//! How:
//! 0. all of a merchant's charges on one schedule at amounts of one order are one series;
//! 1. otherwise charges are grouped by amount (within 1% or 0.10); a group that is regular on its own is a
//!    series candidate, and two candidates that follow each other on one schedule are one series
//!    with a price change, where two that overlap in time are two subscriptions;
//! 2. charges not in any regular amount group are tried together (variable amounts: utilities,
//!    phone bills);
//! 3. a cadence is tested by laying a grid of expected dates over the charges — calendar months,
//!    quarters, half-years and years (the 31st is the month's last day in shorter months), or a
//!    fixed step of 7 or 14 days — and matching each expected date to a charge within the
//!    cadence's tolerance (covering weekends and processing delays). Regularity = matched slots ÷
//!    slots; a skipped payment costs one slot, an odd extra charge is left unmatched and counted.
//!    A cadence is accepted with at least 3 matched slots (4 weekly and biweekly), a missed slot per three matches at
//!    most, regularity ≥ 0.7 and extras at most a third of the matches; the best accepted cadence wins.
//!
//! Dates are days since 1970-01-01 (proleptic Gregorian), like PostgreSQL's `date - '1970-01-01'`.

/// The schedules a series can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cadence {
    Weekly,
    Biweekly,
    Monthly,
    Quarterly,
    HalfYearly,
    Yearly,
}

pub const CADENCES: [Cadence; 6] =
    [Cadence::Weekly, Cadence::Biweekly, Cadence::Monthly, Cadence::Quarterly, Cadence::HalfYearly, Cadence::Yearly];

impl Cadence {
    pub fn name(self) -> &'static str {
        match self {
            Cadence::Weekly => "weekly",
            Cadence::Biweekly => "biweekly",
            Cadence::Monthly => "monthly",
            Cadence::Quarterly => "quarterly",
            Cadence::HalfYearly => "half-yearly",
            Cadence::Yearly => "yearly",
        }
    }

    pub fn parse(s: &str) -> Option<Cadence> {
        CADENCES.iter().copied().find(|c| c.name() == s)
    }

    /// Nominal length in days.
    pub fn days(self) -> f64 {
        match self {
            Cadence::Weekly => 7.0,
            Cadence::Biweekly => 14.0,
            Cadence::Monthly => 30.44,
            Cadence::Quarterly => 91.31,
            Cadence::HalfYearly => 182.62,
            Cadence::Yearly => 365.25,
        }
    }

    /// How far a charge may land from its expected date (jitter, weekends, processing).
    pub fn tolerance(self) -> i32 {
        match self {
            Cadence::Weekly => 2,
            Cadence::Biweekly => 3,
            Cadence::Monthly => 5,
            Cadence::Quarterly => 6,
            Cadence::HalfYearly => 8,
            Cadence::Yearly => 10,
        }
    }

    fn months(self) -> Option<i32> {
        match self {
            Cadence::Monthly => Some(1),
            Cadence::Quarterly => Some(3),
            Cadence::HalfYearly => Some(6),
            Cadence::Yearly => Some(12),
            _ => None,
        }
    }

    /// Two matching charges are too often chance (a pair of similar amounts six months
    /// apart): every cadence needs three, so a yearly series shows after its third year; weekly
    /// and biweekly need four (three charges a week apart are a busy fortnight as often as not).
    fn min_matches(self) -> usize {
        match self {
            Cadence::Weekly | Cadence::Biweekly => 4,
            _ => 3,
        }
    }
}

// ---- calendar ----------------------------------------------------------------------------

/// Days since 1970-01-01 of a civil date (H. Hinnant's algorithm).
pub fn days_from_civil(y: i32, m: u32, d: u32) -> i32 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m as i32 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i32 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date (year, month, day) of a day number.
pub fn civil_from_days(z: i32) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

pub fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// The day `months` calendar months after the month of `from`, on day-of-month `dom` (the
/// month's last day where it is shorter).
pub fn add_months(from: i32, months: i32, dom: u32) -> i32 {
    let (y, m, _) = civil_from_days(from);
    let idx = y * 12 + (m as i32 - 1) + months;
    let (ny, nm) = (idx.div_euclid(12), (idx.rem_euclid(12) + 1) as u32);
    days_from_civil(ny, nm, dom.min(days_in_month(ny, nm)))
}

// ---- series ------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Charge {
    pub day: i32,
    pub amount: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PriceChange {
    /// First charge at the new amount.
    pub day: i32,
    pub from: f64,
    pub to: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Not yet past its next expected date by more than the tolerance.
    Active,
    /// Past its next expected date by more than the tolerance (one payment missing).
    Late,
    /// Two or more expected payments missing.
    Ended,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Late => "late",
            Status::Ended => "ended",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub cadence: Cadence,
    /// Matched slots ÷ slots of the grid, less a penalty for unmatched extra charges; in (0, 1].
    pub regularity: f64,
    /// Charges that belong to the series.
    pub charges: usize,
    /// The odd extra charges at the merchant between its slots (not part of the series).
    pub extras: usize,
    /// Median amount since the last price change, in cents.
    pub amount: f64,
    /// The amounts since the last price change agree within 2%.
    pub fixed_amount: bool,
    pub price_changes: Vec<PriceChange>,
    pub first: i32,
    pub last: i32,
    pub next_expected: i32,
    pub next_amount: f64,
    /// The day of month a calendar schedule falls on (31: the month's end); 0 for weekly and
    /// biweekly.
    pub anchor_day: u32,
}

impl Series {
    pub fn status(&self, today: i32) -> Status {
        status_on(self.cadence, self.next_expected, self.anchor_day, today)
    }
}

/// The expected date one period after `day` on a schedule (`anchor_day`: the day of month of a
/// calendar cadence).
fn next_after(cadence: Cadence, day: i32, anchor_day: u32) -> i32 {
    match cadence.months() {
        Some(m) => add_months(day, m, anchor_day),
        None => day + cadence.days() as i32,
    }
}

/// The status on `today` of a series expected next on `next_expected`: active until the
/// tolerance after it, late until the tolerance after the payment after it, then ended.
pub fn status_on(cadence: Cadence, next_expected: i32, anchor_day: u32, today: i32) -> Status {
    let tol = cadence.tolerance();
    if today <= next_expected + tol {
        Status::Active
    } else if today <= next_after(cadence, next_expected, anchor_day) + tol {
        Status::Late
    } else {
        Status::Ended
    }
}

/// How far the matched charges lie from their nearest expected dates, in days (ties between
/// anchors go to the closer grid).
fn grid_distance(days: &[i32], grid: &[i32], matched: &[usize]) -> i64 {
    matched.iter().map(|&i| grid.iter().map(|&e| (days[i] - e).abs() as i64).min().unwrap_or(0)).sum()
}

/// Amounts within 1% or 0.10 of each other are one price (a subscription charges the same
/// amount; bills that vary are found by the variable-amount pass).
fn same_amount(a: f64, b: f64) -> bool {
    (a - b).abs() <= (0.01 * a.abs().max(b.abs())).max(0.1)
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The day of month a monthly schedule falls on: the median day, or 31 (the month's end) when
/// the charges sit within 3 days of their months' ends.
fn anchor_dom(days: &[i32]) -> u32 {
    let at_end = days.iter().all(|&d| {
        let (y, m, dd) = civil_from_days(d);
        days_in_month(y, m) - dd <= 3
    });
    if at_end && days.iter().any(|&d| civil_from_days(d).2 >= 28) {
        return 31;
    }
    let mut doms: Vec<f64> = days.iter().map(|&d| civil_from_days(d).2 as f64).collect();
    median(&mut doms).round() as u32
}

/// One cadence laid over sorted charge days: (matched charge indices, slots, extras, next
/// expected, the day of month of a calendar schedule).
struct Fit {
    matched: Vec<usize>,
    slots: usize,
    extras: usize,
    next: i32,
    dom: u32,
}

/// Each expected date takes the nearest unused charge within the tolerance: matched indices.
fn match_grid(days: &[i32], expected: &[i32], tol: i32) -> Vec<usize> {
    let mut used = vec![false; days.len()];
    let mut matched = Vec::new();
    let mut j = 0;
    for &e in expected {
        while j < days.len() && days[j] < e - tol {
            j += 1;
        }
        let mut best: Option<usize> = None;
        let mut k = j;
        while k < days.len() && days[k] <= e + tol {
            if !used[k] && best.is_none_or(|b| (days[k] - e).abs() < (days[b] - e).abs()) {
                best = Some(k);
            }
            k += 1;
        }
        if let Some(b) = best {
            used[b] = true;
            matched.push(b);
        }
    }
    matched
}

/// Expected dates of a calendar schedule on day-of-month `dom` covering [first − tol, last + tol]
/// (starting a period before the first charge's month: a charge early in a month may pay the
/// previous month's end).
fn calendar_grid(first: i32, last: i32, step: i32, dom: u32, tol: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let mut k = -1;
    loop {
        let e = add_months(first, step * k, dom);
        if e > last + tol || out.len() > 2000 {
            break;
        }
        if e >= first - tol {
            out.push(e);
        }
        k += 1;
    }
    out
}

fn fit(days: &[i32], cadence: Cadence) -> Option<Fit> {
    let (first, last) = (*days.first()?, *days.last()?);
    let tol = cadence.tolerance();
    let (expected, matched, dom) = match cadence.months() {
        Some(step) => {
            // the anchor day that explains most charges: each charge's day of month, the median,
            // and the month's end (31st, which is the 28th to 30th in shorter months)
            let mut doms: Vec<u32> = days.iter().map(|&d| civil_from_days(d).2).collect();
            doms.push(anchor_dom(days));
            doms.push(31);
            doms.sort_unstable();
            doms.dedup();
            // most matches, then fewest slots, then the smallest distance of charges to their slots
            let mut best: Option<(Vec<i32>, Vec<usize>, u32, i64)> = None;
            for dom in doms {
                let grid = calendar_grid(first, last, step, dom, tol);
                let m = match_grid(days, &grid, tol);
                let dist = grid_distance(days, &grid, &m);
                let better = match &best {
                    None => true,
                    Some((g, bm, _, bd)) => {
                        (m.len(), std::cmp::Reverse(grid.len()), std::cmp::Reverse(dist))
                            > (bm.len(), std::cmp::Reverse(g.len()), std::cmp::Reverse(*bd))
                    }
                };
                if better {
                    best = Some((grid, m, dom, dist));
                }
            }
            let (g, m, dom, _) = best?;
            (g, m, dom)
        }
        None => {
            let p = cadence.days() as i32;
            // anchor: the first charge, moved by the median offset of all charges on the grid
            let mut offs: Vec<f64> = days
                .iter()
                .map(|&d| {
                    let r = (d - first).rem_euclid(p);
                    (if r > p / 2 { r - p } else { r }) as f64
                })
                .collect();
            let center = first + median(&mut offs).round() as i32;
            if (last - first) / p > 5000 {
                return None;
            }
            // the anchor near the median offset that matches most charges, closest
            let mut best: Option<(Vec<i32>, Vec<usize>, i64)> = None;
            for shift in -3..=3 {
                let start = center + shift;
                let start = if start > first + tol { start - p } else { start };
                let n = ((last + tol - start) / p).max(0) as usize + 1;
                let grid: Vec<i32> = (0..n).map(|i| start + (i as i32) * p).filter(|&e| e >= first - tol).collect();
                let m = match_grid(days, &grid, tol);
                let dist = grid_distance(days, &grid, &m);
                let better = match &best {
                    None => true,
                    Some((_, bm, bd)) => m.len() > bm.len() || (m.len() == bm.len() && dist < *bd),
                };
                if better {
                    best = Some((grid, m, dist));
                }
            }
            let (g, m, _) = best?;
            (g, m, 0)
        }
    };
    // slots before the first matched one and after the last are not misses
    let (lo, hi) = match (matched.first(), matched.last()) {
        (Some(&a), Some(&b)) => (days[a], days[b]),
        _ => return None,
    };
    let slots = expected.iter().filter(|&&e| e >= lo - tol && e <= hi + tol).count();
    let last_slot = *expected.iter().rev().find(|&&e| e <= hi + tol)?;
    let next = next_after(cadence, last_slot, dom);
    Some(Fit { slots, extras: days.len() - matched.len(), matched, next, dom })
}

/// The best accepted cadence for these days: (cadence, fit, regularity).
fn best_cadence(days: &[i32]) -> Option<(Cadence, Fit, f64)> {
    let mut best: Option<(Cadence, Fit, f64)> = None;
    for c in CADENCES {
        let Some(f) = fit(days, c) else { continue };
        let m = f.matched.len();
        if m < c.min_matches() {
            continue;
        }
        let regularity = m as f64 / f.slots as f64 - 0.5 * f.extras as f64 / (m + f.extras) as f64;
        // a skipped payment is allowed once there is evidence around it: none in 3 matches,
        // one in 4-6, two in 7-9, ...
        let misses = f.slots - m;
        if m as f64 / (f.slots as f64) < 0.7 || misses > (m - 1) / 3 || f.extras * 3 > m {
            continue;
        }
        // the longest cadence that explains the charges wins ties (a monthly series also fits
        // a weekly grid badly, never better); among the rest, the more regular
        let better = match &best {
            None => true,
            Some((_, bf, br)) => regularity > br + 1e-9 || ((regularity - br).abs() < 1e-9 && m >= bf.matched.len()),
        };
        if better {
            best = Some((c, f, regularity));
        }
    }
    best
}

fn build(charges: &[Charge], cadence: Cadence, f: &Fit, regularity: f64, extras: usize) -> Series {
    let members: Vec<Charge> = f.matched.iter().map(|&i| charges[i]).collect();
    // price segments: consecutive members at one amount
    let mut segments: Vec<(usize, usize)> = vec![(0, 1)];
    for i in 1..members.len() {
        let (s, _) = *segments.last().expect("one segment");
        let mut seg: Vec<f64> = members[s..i].iter().map(|c| c.amount).collect();
        if same_amount(members[i].amount, median(&mut seg)) {
            segments.last_mut().expect("one segment").1 = i + 1;
        } else {
            segments.push((i, i + 1));
        }
    }
    // a one-charge segment between two equal ones is an odd amount, not a change
    let mut price_changes = Vec::new();
    let seg_median = |s: (usize, usize)| {
        let mut v: Vec<f64> = members[s.0..s.1].iter().map(|c| c.amount).collect();
        median(&mut v)
    };
    let stable: Vec<(usize, usize)> = segments.iter().copied().filter(|s| s.1 - s.0 >= 2 || s.1 == members.len()).collect();
    for w in stable.windows(2) {
        let (a, b) = (seg_median(w[0]), seg_median(w[1]));
        if !same_amount(a, b) {
            price_changes.push(PriceChange { day: members[w[1].0].day, from: a, to: b });
        }
    }
    let current = *stable.last().unwrap_or(segments.last().expect("one segment"));
    let mut cur: Vec<f64> = members[current.0..current.1].iter().map(|c| c.amount).collect();
    let amount = median(&mut cur);
    let fixed = cur.iter().all(|a| (a - amount).abs() <= 0.02 * amount.abs().max(0.01));
    // a variable amount whose segments wander is a variable bill, not a run of price changes
    let variable = segments.len() > 2 && segments.len() > members.len() / 2;
    let (amount, fixed, price_changes) = if variable {
        let mut all: Vec<f64> = members.iter().map(|c| c.amount).collect();
        (median(&mut all), false, Vec::new())
    } else {
        (amount, fixed, price_changes)
    };
    let cents = |x: f64| (x * 100.0).round() / 100.0;
    let (amount, price_changes) = (
        cents(amount),
        price_changes.into_iter().map(|c| PriceChange { day: c.day, from: cents(c.from), to: cents(c.to) }).collect(),
    );
    Series {
        cadence,
        regularity: regularity.clamp(0.0, 1.0),
        charges: members.len(),
        extras,
        amount,
        fixed_amount: fixed,
        price_changes,
        first: members.first().map_or(0, |c| c.day),
        last: members.last().map_or(0, |c| c.day),
        next_expected: f.next,
        next_amount: amount,
        anchor_day: f.dom,
    }
}

/// The series among one account's charges at one merchant (any order; amounts may be negative
/// for refunds, which are ignored).
pub fn detect(charges: &[Charge]) -> Vec<Series> {
    let mut cs: Vec<Charge> = charges.iter().copied().filter(|c| c.amount > 0.0 && c.amount.is_finite()).collect();
    cs.sort_by(|a, b| a.day.cmp(&b.day).then(a.amount.total_cmp(&b.amount)));
    if cs.len() < 2 {
        return Vec::new();
    }
    // 0. the merchant's charges together on one schedule, at amounts of one order (within a
    //    factor 2 of their median): one series — a fixed price, a price change, or a bill that
    //    varies (a subscription charged in another currency moves with the exchange rate)
    let all_days: Vec<i32> = cs.iter().map(|c| c.day).collect();
    if let Some((c, f, r)) = best_cadence(&all_days) {
        let mut amounts: Vec<f64> = f.matched.iter().map(|&i| cs[i].amount).collect();
        let mid = median(&mut amounts);
        if f.extras * 4 <= f.matched.len() && amounts.iter().all(|a| *a <= mid * 2.0 && *a >= mid / 2.0) {
            let extras = f.extras;
            return vec![build(&cs, c, &f, r, extras)];
        }
    }
    // 1. amount groups, largest first
    let mut by_amount: Vec<Charge> = cs.clone();
    by_amount.sort_by(|a, b| a.amount.total_cmp(&b.amount));
    let mut groups: Vec<Vec<Charge>> = Vec::new();
    for c in by_amount {
        match groups.last_mut() {
            Some(g) if same_amount(g[g.len() - 1].amount, c.amount) => g.push(c),
            _ => groups.push(vec![c]),
        }
    }
    for g in &mut groups {
        g.sort_by_key(|c| c.day);
    }
    // regular groups
    let mut regular: Vec<(Vec<Charge>, Cadence)> = Vec::new();
    let mut rest: Vec<Charge> = Vec::new();
    for g in groups {
        let days: Vec<i32> = g.iter().map(|c| c.day).collect();
        match best_cadence(&days) {
            Some((c, _, _)) => regular.push((g, c)),
            None => rest.extend(g),
        }
    }
    rest.sort_by(|a, b| a.day.cmp(&b.day).then(a.amount.total_cmp(&b.amount)));
    // 2. join groups of one cadence that follow each other (a price change)
    regular.sort_by_key(|(g, _)| g[0].day);
    let mut joined: Vec<(Vec<Charge>, Cadence)> = Vec::new();
    'outer: for (g, c) in regular {
        for (h, hc) in joined.iter_mut() {
            let (h_last, g_first) = (h[h.len() - 1].day, g[0].day);
            let gap = (g_first - h_last) as f64;
            if *hc == c && g_first > h_last && gap <= c.days() * 1.5 + c.tolerance() as f64 {
                h.extend(g);
                continue 'outer;
            }
        }
        joined.push((g, c));
    }
    // a price change whose new amount has fewer charges than a series needs: a run of one
    // amount that continues a series' schedule right after its last charge joins it
    let mut rest_groups: Vec<Vec<Charge>> = Vec::new();
    for c in &rest {
        match rest_groups.iter_mut().find(|g| same_amount(g[0].amount, c.amount)) {
            Some(g) => g.push(*c),
            None => rest_groups.push(vec![*c]),
        }
    }
    let mut absorbed = vec![false; rest_groups.len()];
    for (h, c) in joined.iter_mut() {
        for (k, g) in rest_groups.iter().enumerate() {
            if absorbed[k] || g.len() < 2 {
                continue;
            }
            let (h_last, g_first) = (h[h.len() - 1].day, g[0].day);
            if g_first <= h_last || (g_first - h_last) as f64 > c.days() * 1.5 + c.tolerance() as f64 {
                continue;
            }
            let mut days: Vec<i32> = h.iter().chain(g.iter()).map(|x| x.day).collect();
            days.sort_unstable();
            let before = fit(&days[..h.len()], *c).map_or(0, |f| f.matched.len());
            // every charge of the run continues the schedule (one odd extra allowed)
            if fit(&days, *c).is_some_and(|f| f.matched.len() + 1 >= before + g.len() && f.matched.len() >= before + 2) {
                h.extend(g.iter().copied());
                h.sort_by_key(|x| x.day);
                absorbed[k] = true;
            }
        }
    }
    let mut rest: Vec<Charge> = rest_groups.into_iter().zip(absorbed).filter(|(_, a)| !a).flat_map(|(g, _)| g).collect();
    rest.sort_by(|a, b| a.day.cmp(&b.day).then(a.amount.total_cmp(&b.amount)));
    let mut out = Vec::new();
    for (g, c) in joined {
        let days: Vec<i32> = g.iter().map(|c| c.day).collect();
        if let Some(f) = fit(&days, c) {
            let m = f.matched.len();
            if m >= c.min_matches() {
                let r = m as f64 / f.slots as f64;
                // extras of the merchant that fall between this series' slots
                let extras = rest.iter().filter(|x| x.day > g[0].day && x.day < g[g.len() - 1].day).count();
                out.push(build(&g, c, &f, r, extras));
            }
        }
    }
    // 3. the rest together: variable amounts (also beside a fixed plan at the same merchant)
    if rest.len() >= 3 {
        let days: Vec<i32> = rest.iter().map(|c| c.day).collect();
        // one charge per day: the largest (an extra small charge on a bill's day is an extra)
        if let Some((c, f, r)) = best_cadence(&days) {
            let extras = f.extras;
            out.push(build(&rest, c, &f, r, extras));
        }
    }
    out.sort_by_key(|s| (s.first, s.cadence));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::SplitMix;

    fn d(y: i32, m: u32, dd: u32) -> i32 {
        days_from_civil(y, m, dd)
    }

    fn monthly(from: (i32, u32, u32), n: usize, amount: f64) -> Vec<Charge> {
        (0..n).map(|i| Charge { day: add_months(d(from.0, from.1, from.2), i as i32, from.2), amount }).collect()
    }

    #[test]
    fn calendar_round_trips() {
        for z in [-1000, 0, 1, 59, 365, 10_957, 20_000, 25_000] {
            let (y, m, dd) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, dd), z);
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
        assert_eq!(add_months(d(2026, 1, 31), 1, 31), d(2026, 2, 28));
        assert_eq!(add_months(d(2024, 1, 31), 1, 31), d(2024, 2, 29));
        assert_eq!(add_months(d(2026, 11, 15), 3, 15), d(2027, 2, 15));
    }

    #[test]
    fn a_monthly_subscription() {
        let s = detect(&monthly((2026, 1, 5), 8, 9.99));
        assert_eq!(s.len(), 1, "{s:?}");
        let s = &s[0];
        assert_eq!(s.cadence, Cadence::Monthly);
        assert!(s.fixed_amount && (s.amount - 9.99).abs() < 1e-9 && s.regularity > 0.99);
        assert_eq!(s.next_expected, d(2026, 9, 5));
        assert_eq!(s.status(d(2026, 9, 1)), Status::Active);
        assert_eq!(s.status(d(2026, 9, 15)), Status::Late);
        assert_eq!(s.status(d(2026, 11, 20)), Status::Ended);
    }

    #[test]
    fn month_ends_skips_and_extras() {
        // the 31st: 28/30/31 in shorter months, one month skipped, one extra charge
        let mut c = monthly((2026, 1, 31), 7, 15.0);
        c.remove(3);
        c.push(Charge { day: d(2026, 3, 12), amount: 15.0 });
        let s = detect(&c);
        assert_eq!(s.len(), 1, "{s:?}");
        assert_eq!(s[0].cadence, Cadence::Monthly);
        assert_eq!(s[0].next_expected, d(2026, 8, 31));
        // 6 of 7 slots, less the penalty for one extra charge
        assert!(s[0].regularity > 0.75 && s[0].regularity < 0.86 && s[0].extras == 1, "{:?}", s[0]);
    }

    #[test]
    fn a_price_change_is_one_series_two_amounts_are_two() {
        let mut c = monthly((2025, 10, 3), 5, 9.99);
        c.extend(monthly((2026, 3, 3), 4, 12.99));
        let s = detect(&c);
        assert_eq!(s.len(), 1, "{s:?}");
        assert_eq!(s[0].price_changes, vec![PriceChange { day: d(2026, 3, 3), from: 9.99, to: 12.99 }]);
        assert!((s[0].next_amount - 12.99).abs() < 1e-9);
        // two plans at one merchant, billed in the same months
        let mut two = monthly((2026, 1, 3), 6, 9.99);
        two.extend(monthly((2026, 1, 17), 6, 4.99));
        let s = detect(&two);
        assert_eq!(s.len(), 2, "{s:?}");
    }

    #[test]
    fn weekly_biweekly_yearly_and_variable_bills() {
        let weekly: Vec<Charge> = (0..10).map(|i| Charge { day: d(2026, 1, 2) + 7 * i, amount: 25.0 }).collect();
        assert_eq!(detect(&weekly)[0].cadence, Cadence::Weekly);
        let biweekly: Vec<Charge> = (0..8).map(|i| Charge { day: d(2026, 1, 2) + 14 * i + (i % 2), amount: 60.0 }).collect();
        assert_eq!(detect(&biweekly)[0].cadence, Cadence::Biweekly);
        let yearly = vec![Charge { day: d(2023, 5, 3), amount: 99.0 }, Charge { day: d(2024, 5, 1), amount: 99.0 },
                          Charge { day: d(2025, 5, 2), amount: 99.0 }, Charge { day: d(2026, 4, 30), amount: 99.0 }];
        assert_eq!(detect(&yearly)[0].cadence, Cadence::Yearly);
        let bill: Vec<Charge> = (0..9).map(|i| Charge { day: add_months(d(2025, 6, 20), i, 20), amount: 40.0 + 13.0 * ((i * 7) % 5) as f64 }).collect();
        let s = detect(&bill);
        assert_eq!(s.len(), 1, "{bill:?} -> {s:?}");
        assert!(!s[0].fixed_amount && s[0].price_changes.is_empty() && s[0].cadence == Cadence::Monthly, "{s:?}");
    }

    #[test]
    fn irregular_shopping_is_not_recurring() {
        let mut rng = SplitMix::new(3);
        for _ in 0..50 {
            let n = 4 + (rng.next_u64() % 20) as usize;
            let c: Vec<Charge> = (0..n)
                .map(|_| Charge { day: d(2026, 1, 1) + (rng.next_u64() % 300) as i32, amount: 5.0 + (rng.next_u64() % 20000) as f64 / 100.0 })
                .collect();
            let s = detect(&c);
            assert!(s.is_empty(), "{c:?} -> {s:?}");
        }
    }
}
