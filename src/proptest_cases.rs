//! How many cases the property tests run: their own default in a normal run, `PROPTEST_CASES` when
//! it is set (a longer soak; README.md has the command). An explicit `cases` in a test's
//! `ProptestConfig` would otherwise ignore the variable.

/// `PROPTEST_CASES` when it is a number, else `default`.
pub(crate) fn or(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(default)
}
