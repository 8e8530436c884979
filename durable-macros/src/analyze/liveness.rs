//! Liveness: which locals a state variant must hold.
//!
//! A local is live at an await if the code that runs after it (the segment
//! that resumes there) reads it before redefining it. That code is built by
//! lowering, so liveness is the set of free variables of the segment, each
//! resolved to the binding visible at its nesting depth. A suspension inside
//! a segment reads exactly the live set of its own await, so the sets are a
//! least fixpoint, found by iterating until nothing changes.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::{self, Visit};
use syn::{Expr, Stmt};

use super::lower::{Binding, Cont, Segment, Wrap};
use super::markers::{self, INNER, SUSPEND};

/// Free variables of some code, scoping `let`s, patterns and closure
/// parameters; `__durable_suspend!(k)` reads the live names of await `k`.
struct FreeVars<'a> {
    scopes: Vec<HashSet<String>>,
    free: BTreeSet<String>,
    live: &'a [BTreeSet<String>],
    commands: &'a [Expr],
    full: Option<&'a Expr>,
}

impl FreeVars<'_> {
    fn use_name(&mut self, name: &str) {
        if !self.scopes.iter().any(|s| s.contains(name)) {
            self.free.insert(name.to_owned());
        }
    }

    fn bind(&mut self, pat: &syn::Pat) {
        let names: Vec<String> = markers::pat_bindings(pat)
            .into_iter()
            .map(|b| b.ident.to_string())
            .collect();
        if let Some(top) = self.scopes.last_mut() {
            top.extend(names);
        }
    }

    fn stmts(&mut self, stmts: &[Stmt]) {
        self.scopes.push(HashSet::new());
        for s in stmts {
            self.visit_stmt(s);
        }
        self.scopes.pop();
    }

    fn tokens(&mut self, tokens: TokenStream) {
        for tt in tokens {
            match tt {
                TokenTree::Ident(i) => self.use_name(&i.to_string()),
                TokenTree::Group(g) => self.tokens(g.stream()),
                TokenTree::Literal(l) => {
                    // implicit format arguments: "{total}" reads `total`
                    let text = l.to_string();
                    if text.starts_with('"') || text.starts_with('r') {
                        for name in format_args_in(&text) {
                            self.use_name(&name);
                        }
                    }
                }
                TokenTree::Punct(_) => {}
            }
        }
    }
}

/// Names used as `{name}` / `{name:?}` in a format string literal.
fn format_args_in(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '{' {
            continue;
        }
        if chars.peek() == Some(&'{') {
            chars.next();
            continue;
        }
        let name: String =
            std::iter::from_fn(|| chars.next_if(|c| c.is_alphanumeric() || *c == '_')).collect();
        if name.starts_with(|c: char| c.is_alphabetic() || c == '_') {
            out.push(name);
        }
    }
    out
}

impl<'ast> Visit<'ast> for FreeVars<'_> {
    fn visit_block(&mut self, b: &'ast syn::Block) {
        self.stmts(&b.stmts);
    }

    fn visit_local(&mut self, l: &'ast syn::Local) {
        if let Some(init) = &l.init {
            self.visit_expr(&init.expr);
            if let Some((_, d)) = &init.diverge {
                self.visit_expr(d);
            }
        }
        self.bind(&l.pat);
    }

    fn visit_item(&mut self, _: &'ast syn::Item) {}

    fn visit_expr_path(&mut self, p: &'ast syn::ExprPath) {
        if p.qself.is_none()
            && let Some(ident) = p.path.get_ident()
        {
            self.use_name(&ident.to_string());
        }
    }

    fn visit_expr_closure(&mut self, c: &'ast syn::ExprClosure) {
        self.scopes.push(HashSet::new());
        for input in &c.inputs {
            self.bind(input);
        }
        self.visit_expr(&c.body);
        self.scopes.pop();
    }

    fn visit_arm(&mut self, arm: &'ast syn::Arm) {
        self.scopes.push(HashSet::new());
        self.bind(&arm.pat);
        if let syn::Pat::Guard(g) = &arm.pat {
            self.visit_expr(&g.guard);
        }
        self.visit_expr(&arm.body);
        self.scopes.pop();
    }

    fn visit_expr_if(&mut self, i: &'ast syn::ExprIf) {
        self.scopes.push(HashSet::new());
        self.visit_expr(&i.cond);
        self.visit_block(&i.then_branch);
        self.scopes.pop();
        if let Some((_, e)) = &i.else_branch {
            self.visit_expr(e);
        }
    }

    fn visit_expr_while(&mut self, w: &'ast syn::ExprWhile) {
        self.scopes.push(HashSet::new());
        self.visit_expr(&w.cond);
        self.visit_block(&w.body);
        self.scopes.pop();
    }

    fn visit_expr_for_loop(&mut self, f: &'ast syn::ExprForLoop) {
        self.visit_expr(&f.expr);
        self.scopes.push(HashSet::new());
        self.bind(&f.pat);
        self.visit_block(&f.body);
        self.scopes.pop();
    }

    fn visit_expr_let(&mut self, l: &'ast syn::ExprLet) {
        self.visit_expr(&l.expr);
        self.bind(&l.pat);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        if let Some(k) = markers::parse(mac, SUSPEND) {
            // suspending evaluates the command, then moves the live locals
            if let Some(command) = self.commands.get(k) {
                self.visit_expr(command);
            }
            let names: Vec<String> = self
                .live
                .get(k)
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default();
            for n in names {
                self.use_name(&n);
            }
        } else if markers::parse(mac, INNER).is_some() {
            if let Some(full) = self.full {
                self.visit_expr(full);
            }
        } else if mac
            .path
            .get_ident()
            .is_some_and(|i| i.to_string().starts_with("__durable_"))
        {
        } else {
            self.tokens(mac.tokens.clone());
        }
    }

    fn visit_expr(&mut self, e: &'ast Expr) {
        visit::visit_expr(self, e);
    }
}

/// A live binding: where it is declared and at which depth it is rebound.
#[derive(Clone)]
pub(crate) struct Live {
    pub(crate) depth: usize,
    pub(crate) binding: Binding,
}

/// The live bindings at the entry of `segment`, given the live names of
/// every await (for the suspensions inside it).
pub(crate) fn live_at(
    segment: &Segment,
    live_names: &[BTreeSet<String>],
    commands: &[Expr],
) -> Vec<Live> {
    let mut out: BTreeMap<String, Live> = BTreeMap::new();
    let mut cont: Option<&Cont> = Some(&segment.cont);
    while let Some(c) = cont {
        let full = match &c.inner {
            Some((_, Wrap::Loop { full, .. })) => Some(full),
            _ => None,
        };
        let mut fv = FreeVars {
            scopes: Vec::new(),
            free: BTreeSet::new(),
            live: live_names,
            commands,
            full: full.map(|v| &**v),
        };
        fv.stmts(&c.code);
        for name in fv.free {
            let found = (0..=c.depth.min(segment.levels.len().saturating_sub(1)))
                .rev()
                .find_map(|d| segment.levels[d].lookup(&name).map(|b| (d, b)));
            if let Some((d, b)) = found {
                out.entry(format!("{d}:{name}")).or_insert(Live {
                    depth: d,
                    binding: b.clone(),
                });
            }
        }
        cont = c.inner.as_ref().map(|(inner, _)| &**inner);
    }
    out.into_values().collect()
}

/// Iterates [`live_at`] over all resume segments to the least fixpoint.
/// `segments[k]` resumes after await `k`.
pub(crate) fn solve(segments: &[Option<Segment>], commands: &[Expr]) -> Vec<Vec<Live>> {
    let mut names: Vec<BTreeSet<String>> = vec![BTreeSet::new(); segments.len()];
    loop {
        let mut changed = false;
        for (k, seg) in segments.iter().enumerate() {
            let Some(seg) = seg else { continue };
            let now: BTreeSet<String> = live_at(seg, &names, commands)
                .into_iter()
                .map(|l| l.binding.ident.to_string())
                .collect();
            if now != names[k] {
                names[k] = now;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    segments
        .iter()
        .map(|seg| {
            seg.as_ref()
                .map(|s| live_at(s, &names, commands))
                .unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_strings_read_their_implicit_arguments() {
        assert_eq!(format_args_in("\"{a} {{b}} {c:?} {0} {}\""), vec!["a", "c"]);
    }
}
