//! Arguments of `#[workflow(...)]` and `#[activity(...)]`.

use proc_macro2::Span;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Expr, Lit, Token};

use crate::ctxt::Ctxt;

/// One `key = value` (or bare `key`) argument.
pub(crate) struct Arg {
    pub(crate) key: syn::Ident,
    pub(crate) value: Option<Expr>,
}

impl Parse for Arg {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let key = if input.peek(Token![crate]) {
            let kw: Token![crate] = input.parse()?;
            syn::Ident::new("crate", kw.span)
        } else {
            input.parse()?
        };
        let value = if input.peek(Token![=]) {
            input.parse::<Token![=]>()?;
            Some(input.parse()?)
        } else {
            None
        };
        Ok(Arg { key, value })
    }
}

/// Parses the attribute's arguments, reporting a syntax error once.
pub(crate) fn parse_args(cx: &Ctxt, args: proc_macro2::TokenStream) -> Vec<Arg> {
    let parser = Punctuated::<Arg, Token![,]>::parse_terminated;
    match syn::parse::Parser::parse2(parser, args) {
        Ok(list) => list.into_iter().collect(),
        Err(e) => {
            cx.syn_error(e);
            Vec::new()
        }
    }
}

/// Reports a key given twice, at the second occurrence.
pub(crate) fn reject_duplicates(cx: &Ctxt, args: &[Arg]) {
    for (i, arg) in args.iter().enumerate() {
        if args[..i].iter().any(|a| a.key == arg.key) {
            cx.error_spanned_by(&arg.key, format!("duplicate `{}` argument", arg.key));
        }
    }
}

pub(crate) fn unknown(cx: &Ctxt, arg: &Arg, accepted: &[&str]) {
    let list = accepted
        .iter()
        .map(|a| format!("`{a}`"))
        .collect::<Vec<_>>()
        .join(", ");
    cx.error_spanned_by(
        &arg.key,
        format!("unknown argument `{}`; accepted: {list}", arg.key),
    );
}

fn value<'a>(cx: &Ctxt, arg: &'a Arg, what: &str) -> Option<&'a Lit> {
    match arg.value.as_ref().map(ungroup) {
        Some(Expr::Lit(lit)) => Some(&lit.lit),
        Some(other) => {
            cx.error_spanned_by(other, format!("`{}` expects {what}", arg.key));
            None
        }
        None => {
            cx.error_spanned_by(
                &arg.key,
                format!("`{}` expects a value: `{} = {what}`", arg.key, arg.key),
            );
            None
        }
    }
}

/// A value passed through a `macro_rules!` fragment (`$name:literal`) comes
/// wrapped in an invisible group: the literal inside it is meant.
fn ungroup(expr: &Expr) -> &Expr {
    match expr {
        Expr::Group(g) => ungroup(&g.expr),
        other => other,
    }
}

pub(crate) fn string(cx: &Ctxt, arg: &Arg) -> Option<(String, Span)> {
    match value(cx, arg, "a string literal")? {
        Lit::Str(s) => Some((s.value(), s.span())),
        other => {
            cx.error_spanned_by(other, format!("`{}` expects a string literal", arg.key));
            None
        }
    }
}

pub(crate) fn integer(cx: &Ctxt, arg: &Arg) -> Option<u64> {
    match value(cx, arg, "an integer")? {
        Lit::Int(i) => match i.base10_parse::<u64>() {
            Ok(v) => Some(v),
            Err(e) => {
                cx.syn_error(e);
                None
            }
        },
        other => {
            cx.error_spanned_by(other, format!("`{}` expects an integer", arg.key));
            None
        }
    }
}

pub(crate) fn float(cx: &Ctxt, arg: &Arg) -> Option<f64> {
    match value(cx, arg, "a number")? {
        Lit::Float(f) => f.base10_parse::<f64>().map_err(|e| cx.syn_error(e)).ok(),
        Lit::Int(i) => i.base10_parse::<f64>().map_err(|e| cx.syn_error(e)).ok(),
        other => {
            cx.error_spanned_by(other, format!("`{}` expects a number", arg.key));
            None
        }
    }
}

pub(crate) fn string_list(cx: &Ctxt, arg: &Arg) -> Option<Vec<String>> {
    match &arg.value {
        Some(Expr::Array(array)) => {
            let mut out = Vec::new();
            for elem in &array.elems {
                match elem {
                    Expr::Lit(syn::ExprLit {
                        lit: Lit::Str(s), ..
                    }) => out.push(s.value()),
                    other => {
                        cx.error_spanned_by(other, format!("`{}` expects string literals", arg.key))
                    }
                }
            }
            Some(out)
        }
        other => {
            let msg = format!(
                "`{}` expects a list of strings: `{} = [\"kind\"]`",
                arg.key, arg.key
            );
            match other {
                Some(e) => cx.error_spanned_by(e, msg),
                None => cx.error_spanned_by(&arg.key, msg),
            }
            None
        }
    }
}

/// `crate = "path"`: where the runtime is, for users who rename it.
pub(crate) fn crate_path(cx: &Ctxt, arg: &Arg) -> Option<syn::Path> {
    let (s, span) = string(cx, arg)?;
    match syn::parse_str::<syn::Path>(&s) {
        Ok(p) => Some(p),
        Err(_) => {
            cx.error_at(
                span,
                format!("`crate` expects a path such as \"::durable_runtime\", not \"{s}\""),
            );
            None
        }
    }
}
