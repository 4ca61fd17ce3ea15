//! Processor and merchant parsing of a card descriptor:
//! `SQ *BLUE BOTTLE COF 8473 OAKLAND CA` → intermediary Square, merchant `BLUE BOTTLE COF`, store
//! `8473`, city `OAKLAND`, region `CA`.
//!
//! 1. The descriptor is upper-cased and its whitespace collapsed (at most 512 characters read).
//! 2. A leading payment intermediary is recognised from [`INTERMEDIARIES`] (`SQ *`, `TST*`,
//!    `PAYPAL *`, `AMZN MKTP`, `GOOGLE *`, `APPLE.COM/BILL`, `SP `, ...) and removed.
//! 3. Tokens that carry no merchant are removed: phone numbers (`877-8244858`, ten digits),
//!    numbers of seven or more digits, reference codes (six or more characters mixing letters and
//!    two or more digits, or a part after `*` such as `US*2K4L91X`), a web address after the
//!    merchant's name (`HELP.UBER.COM`); `NAME-123` keeps the name (the number is the store).
//! 4. A trailing US state (the 50 states, DC) or country code (`GB`, `UK`, `IE`, `USA`, ...) is
//!    the region; the alphabetic token before it the city (two tokens for `SAN FRANCISCO`-like
//!    names), when a merchant token is left before them.
//! 5. A store number is `#1234`, `STORE 123`, `NO 12`, or a run of 2–6 digits after the merchant
//!    name; it is removed from the merchant.
//! 6. What is left is the merchant; with nothing left, the intermediary's own name.
//!
//! [`Parsed::merchant_key`] is the merchant in a form that matches across intermediaries: lower
//! case, apostrophes and `/BILL` dropped, a web domain's suffix dropped, only letters, digits and
//! single spaces — so
//! `PAYPAL *NETFLIX` and `NETFLIX.COM` have one key, `netflix`, and a recurring series billed
//! both ways is one series. Test vectors shared with the Python twin: `tests/parse_vectors.jsonl`.

/// (prefix as it appears, the intermediary's name). Longer prefixes first where they overlap.
pub const INTERMEDIARIES: &[(&str, &str)] = &[
    ("APPLE.COM/BILL", "Apple"),
    ("APL*ITUNES.COM/BILL", "Apple"),
    ("APL* ", "Apple"),
    ("APL*", "Apple"),
    ("AMAZON MARKETPLACE", "Amazon Marketplace"),
    ("AMAZON MKTPLACE", "Amazon Marketplace"),
    ("AMZN MKTPLACE", "Amazon Marketplace"),
    ("AMZN MKTP", "Amazon Marketplace"),
    ("AMAZON UK MARKETPLACE", "Amazon Marketplace"),
    ("AMAZON.CO.UK MKTPLACE", "Amazon Marketplace"),
    ("PAYPAL *", "PayPal"),
    ("PAYPAL*", "PayPal"),
    ("PAYPAL ", "PayPal"),
    ("PP*", "PayPal"),
    ("GOOGLE *", "Google"),
    ("GOOGLE*", "Google"),
    ("SQ *", "Square"),
    ("SQ*", "Square"),
    ("TST* ", "Toast"),
    ("TST*", "Toast"),
    ("SP * ", "Shopify"),
    ("SP *", "Shopify"),
    ("SP ", "Shopify"),
    ("IZ *", "Zettle"),
    ("IZ*", "Zettle"),
    ("ZETTLE_*", "Zettle"),
    ("SUMUP *", "SumUp"),
    ("SUMUP*", "SumUp"),
    ("FS *", "FastSpring"),
    ("FS*", "FastSpring"),
    ("PADDLE.NET* ", "Paddle"),
    ("PADDLE.NET*", "Paddle"),
    ("2CO.COM*", "2Checkout"),
    ("WPY*", "WePay"),
    ("STRIPE *", "Stripe"),
    ("CKO*", "Checkout.com"),
];

const US_STATES: [&str; 51] = [
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "FL", "GA", "HI", "ID", "IL", "IN", "IA", "KS", "KY", "LA", "ME", "MD",
    "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM", "NY", "NC", "ND", "OH", "OK", "OR", "PA", "RI", "SC",
    "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV", "WI", "WY", "DC",
];
const COUNTRIES: [&str; 16] = ["GB", "GBR", "UK", "IE", "IRL", "USA", "US", "FR", "DE", "NL", "ES", "IT", "LU", "BE", "AU", "NZ"];
/// First words of two-word city names (`SAN FRANCISCO`, `NEW YORK`, `ST LOUIS`).
const CITY_PREFIXES: [&str; 16] =
    ["SAN", "LOS", "LAS", "NEW", "SANTA", "ST", "SAINT", "FORT", "FT", "EL", "PALO", "SALT", "BATON", "BEVERLY", "LONG", "PORT"];

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Parsed {
    pub intermediary: Option<String>,
    pub merchant: String,
    pub store: Option<String>,
    pub city: Option<String>,
    pub region: Option<String>,
}

impl Parsed {
    /// The merchant in a form that matches across intermediaries (see the module notes).
    pub fn merchant_key(&self) -> String {
        merchant_key(&self.merchant)
    }
}

pub fn merchant_key(merchant: &str) -> String {
    let mut m = merchant.to_lowercase().replace('\'', "").replace("/bill", "");
    for suffix in [".co.uk", ".com", ".net", ".org", ".io", ".uk", ".us"] {
        if let Some(i) = m.find(suffix) {
            let end = i + suffix.len();
            if end == m.len() || !m[end..].starts_with(|c: char| c.is_alphanumeric()) {
                m.replace_range(i..end, "");
            }
        }
    }
    let cleaned: String = m.chars().map(|c| if c.is_alphanumeric() { c } else { ' ' }).collect();
    cleaned.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn is_phone(t: &str) -> bool {
    let digits = t.chars().filter(|c| c.is_ascii_digit()).count();
    let other_ok = t.chars().all(|c| c.is_ascii_digit() || c == '-' || c == '(' || c == ')' || c == '.');
    other_ok && (10..=11).contains(&digits) && (t.contains('-') || digits >= 10)
}

fn is_reference(t: &str) -> bool {
    let digits = t.chars().filter(|c| c.is_ascii_digit()).count();
    let letters = t.chars().filter(|c| c.is_alphabetic()).count();
    t.chars().count() >= 6 && digits >= 2 && letters >= 1 && t.chars().all(|c| c.is_alphanumeric())
}

fn is_store_number(t: &str) -> Option<String> {
    let s = t.strip_prefix('#').unwrap_or(t);
    if !s.is_empty() && s.len() <= 6 && s.chars().all(|c| c.is_ascii_digit()) && (t.starts_with('#') || s.len() >= 2) {
        Some(s.to_string())
    } else {
        None
    }
}

pub fn parse(descriptor: &str) -> Parsed {
    let up: String = descriptor.chars().take(512).flat_map(|c| c.to_uppercase()).collect();
    let text = up.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out = Parsed::default();
    let mut rest = text.as_str();
    for (prefix, name) in INTERMEDIARIES {
        if rest.starts_with(prefix) {
            out.intermediary = Some((*name).to_string());
            rest = rest[prefix.len()..].trim_start_matches([' ', '*']);
            break;
        }
    }
    // tokens; a part after '*' inside a token is a reference (US*2K4L91X)
    let mut tokens: Vec<String> = Vec::new();
    for t in rest.split(' ') {
        let t = t.trim_matches(|c: char| c == '*' || c == ',' || c == ';');
        if t.is_empty() {
            continue;
        }
        let head = t.split('*').next().unwrap_or("");
        let t = if t.contains('*') { head } else { t };
        let long_number = t.len() >= 7 && t.chars().all(|c| c.is_ascii_digit());
        // a web address after the merchant's name is contact information (HELP.UBER.COM)
        let domain = !tokens.is_empty() && [".COM", ".NET", ".CO.UK", ".ORG"].iter().any(|d| t.ends_with(d));
        if t.is_empty() || is_phone(t) || is_reference(t) || long_number || domain {
            continue;
        }
        // NAME-123: a name with a location or account code
        if let Some((name, code)) = t.split_once('-') {
            if !name.is_empty() && name.chars().all(char::is_alphabetic) && !code.is_empty() && code.chars().all(|c| c.is_ascii_digit()) {
                tokens.push(name.to_string());
                if out.store.is_none() {
                    out.store = Some(code.to_string());
                }
                continue;
            }
        }
        tokens.push(t.to_string());
    }
    // trailing region and city, with at least one merchant token before them (or an
    // intermediary whose name stands in for the merchant: AMZN MKTP US)
    if tokens.len() >= 2 || (tokens.len() == 1 && out.intermediary.is_some()) {
        let last = tokens[tokens.len() - 1].as_str();
        if US_STATES.contains(&last) || COUNTRIES.contains(&last) {
            out.region = Some(last.to_string());
            tokens.pop();
            let n = tokens.len();
            let alpha = |t: &str| t.chars().all(|c| c.is_alphabetic());
            if n >= 2 && alpha(&tokens[n - 1]) {
                let two = n >= 3 && CITY_PREFIXES.contains(&tokens[n - 2].as_str());
                let take = if two { 2 } else { 1 };
                out.city = Some(tokens[n - take..].join(" "));
                tokens.truncate(n - take);
            }
        }
    }
    // store number: #1234, STORE 123, NO 12, or digits after the merchant name
    let mut i = 1;
    while i < tokens.len() {
        let t = tokens[i].clone();
        let marker = ["STORE", "STR", "NO", "NO.", "UNIT"].contains(&tokens[i - 1].as_str());
        if let Some(num) = is_store_number(&t) {
            if out.store.is_none() {
                out.store = Some(num);
            }
            tokens.remove(i);
            if marker && i >= 2 {
                tokens.remove(i - 1);
                i -= 1;
            }
            continue;
        }
        i += 1;
    }
    let merchant = tokens.join(" ");
    let merchant = merchant.trim_matches(|c: char| c == '-' || c == '*' || c == '.' || c == ' ').to_string();
    out.merchant = if merchant.is_empty() {
        out.intermediary.clone().map(|s| s.to_uppercase()).unwrap_or_default()
    } else {
        merchant
    };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_vectors() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/parse_vectors.jsonl");
        let text = std::fs::read_to_string(path).expect("tests/parse_vectors.jsonl");
        let mut n = 0;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            let p = parse(v["raw"].as_str().expect("raw"));
            let s = |k: &str| v[k].as_str().map(str::to_string);
            assert_eq!(p.intermediary, s("intermediary"), "{line}");
            assert_eq!(Some(p.merchant.clone()), s("merchant"), "{line}");
            assert_eq!(p.store, s("store"), "{line}");
            assert_eq!(p.city, s("city"), "{line}");
            assert_eq!(p.region, s("region"), "{line}");
            assert_eq!(Some(p.merchant_key()), s("key"), "{line}");
            n += 1;
        }
        assert!(n >= 25, "{n} vectors");
    }

    #[test]
    fn one_series_through_paypal_and_direct() {
        assert_eq!(parse("PAYPAL *NETFLIX 4029357733").merchant_key(), parse("NETFLIX.COM").merchant_key());
        assert_eq!(parse("GOOGLE *YouTube Premium").merchant_key(), parse("YOUTUBE PREMIUM").merchant_key());
    }

    #[test]
    fn never_panics_on_odd_input() {
        for s in ["", "*", "SQ *", "   ", "#", "ÄÖÜ ß 12 CA", "PAYPAL *", "A CA", "x".repeat(10_000).as_str(), "🙂 1234 WA"] {
            let _ = parse(s);
        }
        assert_eq!(parse("SQ *").merchant, "SQUARE");
    }
}
