/// Quotes an identifier the way PostgreSQL's `quote_ident()` does when it must:
/// always in double quotes, inner double quotes doubled. Any name (quotes, semicolons,
/// spaces, unicode) becomes one identifier; nothing in it is ever read as SQL.
///
/// ```
/// assert_eq!(maint_db::quote_ident("logs"), r#""logs""#);
/// assert_eq!(maint_db::quote_ident(r#"a"; DROP TABLE x; --"#), r#""a""; DROP TABLE x; --""#);
/// ```
pub fn quote_ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// `schema.name`, each part quoted with [`quote_ident`].
pub fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_stay_one_identifier() {
        assert_eq!(quote_ident(""), r#""""#);
        assert_eq!(quote_ident(r#"""#), r#""""""#);
        assert_eq!(quote_ident("tab le;"), r#""tab le;""#);
        assert_eq!(quote_ident("données_🚀"), "\"données_🚀\"");
        assert_eq!(qualified("my schema", r#"x"y"#), r#""my schema"."x""y""#);
    }
}
