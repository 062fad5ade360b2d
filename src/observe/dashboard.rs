//! The migration dashboard: one page (`assets/dashboard.html`) and its chart library
//! (`assets/chart.umd.min.js`, vendored from npm with its licence), both compiled into the
//! binary so the page works with no internet. The page reads `/api/migration`.

pub const PAGE: &str = include_str!("../../assets/dashboard.html");
pub const CHART_JS: &str = include_str!("../../assets/chart.umd.min.js");
