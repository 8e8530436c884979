//! Analysis of a workflow body: await points, segments, live locals,
//! variant names and fingerprints. Codegen consumes only what this returns.

pub(crate) mod fingerprint;
pub(crate) mod liveness;
pub(crate) mod lower;
pub(crate) mod markers;
pub(crate) mod prepare;
pub(crate) mod rewrite;
pub(crate) mod sequence;

use std::collections::BTreeMap;

use quote::ToTokens;
use syn::visit_mut::VisitMut;
use syn::{Expr, Stmt};

use crate::ctxt::Ctxt;
use crate::parse::workflow::WorkflowFn;
use liveness::Live;
use lower::{Binding, Level, Lower, Segment};
use prepare::{AwaitPoint, Prepare};

/// The type of a state field.
pub(crate) enum FieldTy {
    /// Declared in the source (a parameter or an annotated `let`).
    Declared(Box<syn::Type>),
    /// Inferred by rustc: a type parameter of the state enum.
    Inferred(syn::Ident),
}

/// One field of a state variant: a live local.
pub(crate) struct Field {
    pub(crate) name: syn::Ident,
    pub(crate) ty: FieldTy,
    /// Type tokens for the fingerprint (`_` when inferred).
    pub(crate) type_tokens: String,
}

/// A variant of the state enum: waiting at one await point.
pub(crate) struct Variant {
    pub(crate) ident: syn::Ident,
    /// The awaited command's name as written (`charge`).
    pub(crate) command: String,
    pub(crate) fields: Vec<Field>,
    pub(crate) fingerprint: u64,
}

pub(crate) struct Analysis<'a> {
    pub(crate) wf: &'a WorkflowFn,
    pub(crate) awaits: Vec<AwaitPoint>,
    /// Item statements of the body (nested fns, `use`), hoisted so that
    /// every segment sees them.
    pub(crate) items: Vec<Stmt>,
    pub(crate) start: Segment,
    /// `resumes[k]`: the segment after await `k`.
    pub(crate) resumes: Vec<Segment>,
    pub(crate) live: Vec<Vec<Live>>,
    pub(crate) variants: Vec<Variant>,
    pub(crate) start_fingerprint: u64,
    /// The state enum's type parameters for inferred locals.
    pub(crate) inferred: Vec<syn::Ident>,
    pub(crate) fingerprint: u64,
}

/// `check_fraud` → `CheckFraud`.
fn camel(name: &str) -> String {
    name.split('_')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

/// The name of the command an await waits for: the innermost call's
/// function (`charge(..).with_retry(..)` → `charge`).
fn command_name(e: &Expr) -> String {
    match e {
        Expr::Call(c) => match &*c.func {
            Expr::Path(p) => p
                .path
                .segments
                .last()
                .map_or("await".into(), |s| s.ident.to_string()),
            _ => "await".into(),
        },
        Expr::MethodCall(m) => match &*m.receiver {
            r @ (Expr::Call(_) | Expr::MethodCall(_) | Expr::Paren(_)) => command_name(r),
            _ => m.method.to_string(),
        },
        Expr::Paren(p) => command_name(&p.expr),
        Expr::Path(p) => p
            .path
            .segments
            .last()
            .map_or("await".into(), |s| s.ident.to_string()),
        _ => "await".into(),
    }
}

pub(crate) fn analyze<'a>(cx: &Ctxt, wf: &'a WorkflowFn) -> Option<Analysis<'a>> {
    let mut body = (*wf.item.block).clone();
    let fn_name = &wf.item.sig.ident;
    let mut prep = Prepare::new(cx, &wf.krate, fn_name);
    prep.helper = wf.helper;
    prep.visit_block_mut(&mut body);
    let awaits = std::mem::take(&mut prep.awaits);
    markers::normalize(&mut body);
    if cx.has_errors() {
        // later checks would only repeat these errors in other words
        return None;
    }
    sequence::body(&mut body, &mut prep.temps);

    let (items, stmts): (Vec<Stmt>, Vec<Stmt>) = body
        .stmts
        .into_iter()
        .partition(|s| matches!(s, Stmt::Item(_)));
    let lower = Lower {
        cx,
        krate: &wf.krate,
        awaits: &awaits,
    };
    lower.check_positions(&stmts);
    if cx.has_errors() {
        return None;
    }

    let params = Level {
        bindings: wf
            .sig
            .params
            .iter()
            .enumerate()
            .map(|(i, p)| Binding {
                ident: p.name.clone(),
                mutable: p.mutable,
                borrows: false,
                site: format!("param{i}"),
                ty: Some(p.ty.clone()),
            })
            .collect(),
    };
    let start = lower.start_segment(params.clone(), &stmts);
    let resumes: Vec<Option<Segment>> = (0..awaits.len())
        .map(|k| lower.resume_segment(params.clone(), &stmts, k))
        .collect();
    let commands: Vec<Expr> = awaits.iter().map(|a| a.command.clone()).collect();
    let live = liveness::solve(&resumes, &commands);
    let resumes: Vec<Segment> = resumes.into_iter().collect::<Option<_>>()?;

    check_live(cx, &awaits, &resumes, &live);
    if cx.has_errors() {
        return None;
    }

    // one type parameter per inferred binding, shared by every variant holding it
    let mut inferred: BTreeMap<String, syn::Ident> = BTreeMap::new();
    let mut order: Vec<syn::Ident> = Vec::new();
    let mut used_names: BTreeMap<String, usize> = BTreeMap::new();
    let mut variants = Vec::new();
    for (k, aw) in awaits.iter().enumerate() {
        let command = command_name(&aw.command);
        let mut base = camel(&command);
        if base.is_empty() || base == "Start" || base == "Finished" {
            base = format!("{base}Await");
        }
        let n = used_names.entry(base.clone()).or_insert(0);
        *n += 1;
        let ident = if *n == 1 { base } else { format!("{base}{n}") };
        let mut fields = Vec::new();
        for l in &live[k] {
            let b = &l.binding;
            let (ty, type_tokens) = match &b.ty {
                Some(t) => (
                    FieldTy::Declared(Box::new(t.clone())),
                    t.to_token_stream().to_string(),
                ),
                None => {
                    let key = format!("{}:{}", b.site, b.ident);
                    let next = inferred.len();
                    let param = inferred
                        .entry(key)
                        .or_insert_with(|| {
                            let p = syn::Ident::new(
                                &format!("__L{next}"),
                                b.ident.span(), // "cannot be stored" errors point at the binding
                            );
                            order.push(p.clone());
                            p
                        })
                        .clone();
                    (FieldTy::Inferred(param), "_".to_owned())
                }
            };
            fields.push(Field {
                name: b.ident.clone(),
                ty,
                type_tokens,
            });
        }
        let mut v = Variant {
            ident: syn::Ident::new(&ident, aw.span),
            command,
            fields,
            fingerprint: 0,
        };
        v.fingerprint = fingerprint::variant(&wf.name, &v);
        variants.push(v);
    }
    let start_fields: Vec<Field> = wf
        .sig
        .params
        .iter()
        .map(|p| Field {
            name: p.name.clone(),
            ty: FieldTy::Declared(Box::new(p.ty.clone())),
            type_tokens: p.ty.to_token_stream().to_string(),
        })
        .collect();
    let start_variant = Variant {
        ident: syn::Ident::new("Start", proc_macro2::Span::call_site()),
        command: String::new(),
        fields: start_fields,
        fingerprint: 0,
    };
    let start_fingerprint = fingerprint::variant(&wf.name, &start_variant);
    let all: Vec<u64> = std::iter::once(start_fingerprint)
        .chain(variants.iter().map(|v| v.fingerprint))
        .collect();
    let input = crate::parse::input_type(&wf.sig.params)
        .to_token_stream()
        .to_string();
    let output = wf.sig.output.to_token_stream().to_string();
    let fingerprint = fingerprint::whole(&wf.name, &input, &output, &all);

    Some(Analysis {
        wf,
        awaits,
        items,
        start,
        resumes,
        live,
        variants,
        start_fingerprint,
        inferred: order,
        fingerprint,
    })
}

/// Cross-cutting rules on live locals, each reported at the offending code.
fn check_live(cx: &Ctxt, awaits: &[AwaitPoint], resumes: &[Segment], live: &[Vec<Live>]) {
    let mut reported = std::collections::HashSet::new();
    for (k, lives) in live.iter().enumerate() {
        let seg = &resumes[k];
        for l in lives {
            let b = &l.binding;
            // a borrow cannot be stored: the value it points to is not in the state
            let hidden = b.ident.to_string().starts_with(sequence::OPERAND);
            if b.borrows && hidden && reported.insert(format!("borrow:{}:{}", b.site, b.ident)) {
                cx.error_at(
                    b.ident.span(),
                    "this operand is evaluated before an `.await` later in the same expression, and it is a borrow: a borrow cannot be checkpointed; bind an owned value with `let` before the expression (e.g. `.clone()`), or compute it after the await",
                );
            } else if b.borrows && reported.insert(format!("borrow:{}:{}", b.site, b.ident)) {
                cx.error_spanned_by(
                    &b.ident,
                    format!(
                        "`{}` holds a borrow and is still used after an `.await`: a borrow cannot be checkpointed; store an owned value instead (e.g. `.clone()` or `.to_owned()`), or compute it again after the await",
                        b.ident
                    ),
                );
            }
            // the live binding must be the one its name reaches at the await
            let shadowed = seg
                .levels
                .iter()
                .skip(l.depth + 1)
                .any(|lv| lv.lookup(&b.ident.to_string()).is_some());
            if shadowed && reported.insert(format!("shadow:{k}:{}", b.ident)) {
                cx.error_at(
                    awaits[k].span,
                    format!(
                        "`{}` is still needed after this `.await`, but another `{}` declared in an inner block shadows it here; rename one of them",
                        b.ident, b.ident
                    ),
                );
            }
        }
    }
}
