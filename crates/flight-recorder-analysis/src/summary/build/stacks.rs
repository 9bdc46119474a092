//! Resolving the stacks the analyses kept, and the "where CPU time went" table.

use std::collections::HashMap;

use flight_recorder_format::NameTables;

use super::cpu::OUTSIDE_POLLS;
use super::location_name;
use crate::ids::IdMap;
use crate::merge::Names;
use crate::summary::{CpuFunction, CpuLocation};
use crate::symbols::{source_at, ResolvedFrame, Symbolizer};

/// A frame's functions as names, innermost first (inlined functions expanded); an unresolved
/// frame is `module+0xoffset`.
pub(crate) fn frame_names(frame: &ResolvedFrame) -> Vec<(String, String)> {
    if frame.functions.is_empty() {
        return vec![(raw_name(frame), String::new())];
    }
    frame
        .functions
        .iter()
        .map(|f| {
            let name = if f.function.is_empty() {
                raw_name(frame)
            } else {
                f.function.clone()
            };
            let at = source_at(f);
            (name, at)
        })
        .collect()
}

/// `module+0xoffset` (the module's file name), or the bare address.
pub(crate) fn raw_name(frame: &ResolvedFrame) -> String {
    match &frame.module {
        Some(m) => format!("{}+{:#x}", m.rsplit('/').next().unwrap_or(m), frame.offset),
        None => format!("{:#x}", frame.address),
    }
}

pub(super) fn cpu_locations(
    names: &dyn Names,
    tables: &NameTables,
    symbolizer: &mut Symbolizer,
    counts: IdMap<IdMap<u64>>,
    top: usize,
) -> Vec<CpuLocation> {
    let mut out: Vec<CpuLocation> = counts
        .into_iter()
        .map(|(location, stacks)| {
            let mut functions: HashMap<String, CpuFunction> = HashMap::new();
            let mut folded: HashMap<String, u64> = HashMap::new();
            let mut samples = 0;
            let mut app_frame: Option<(u64, String)> = None;
            let mut app: std::collections::HashSet<String> = Default::default();
            let mut stacks: Vec<(u64, u64)> = stacks.into_iter().collect();
            stacks.sort_unstable();
            for (stack, n) in stacks {
                samples += n;
                let frames = tables
                    .stack(stack)
                    .map(|a| symbolizer.resolve_stack(tables, a))
                    .unwrap_or_default();
                if let Some(app) = crate::summary::stacks_text::first_app_frame(&frames) {
                    if app_frame.as_ref().is_none_or(|(most, _)| n > *most) {
                        app_frame = Some((n, app));
                    }
                }
                for line in crate::summary::stacks_text::lines(&frames) {
                    if line.library.is_none() {
                        app.insert(line.function);
                    }
                }
                let flat: Vec<(String, String)> = frames.iter().flat_map(frame_names).collect();
                let mut seen: Vec<&str> = Vec::new();
                for (i, (name, at)) in flat.iter().enumerate() {
                    let f = functions
                        .entry(name.clone())
                        .or_insert_with(|| CpuFunction {
                            function: name.clone(),
                            location: at.clone(),
                            ..CpuFunction::default()
                        });
                    if i == 0 {
                        f.self_samples += n;
                    }
                    if !seen.contains(&name.as_str()) {
                        f.total_samples += n;
                        seen.push(name);
                    }
                }
                let line = if flat.is_empty() {
                    "(no stack)".to_string()
                } else {
                    flat.iter()
                        .rev()
                        .map(|(n, _)| n.replace(';', ":"))
                        .collect::<Vec<_>>()
                        .join(";")
                };
                *folded.entry(line).or_default() += n;
            }
            // Where the samples were, and the application's functions above them: the
            // runtime's and std's callers in between would fill the list.
            let mut functions: Vec<CpuFunction> = functions
                .into_values()
                .filter(|f| f.self_samples > 0 || app.contains(&f.function))
                .collect();
            // Where the samples were (self) first, then the callers that hold the most.
            functions.sort_by(|a, b| {
                (b.self_samples, b.total_samples, &a.function).cmp(&(
                    a.self_samples,
                    a.total_samples,
                    &b.function,
                ))
            });
            functions.truncate(top.max(1));
            let mut folded: Vec<(String, u64)> = folded.into_iter().collect();
            folded.sort();
            CpuLocation {
                location: if location == OUTSIDE_POLLS {
                    "outside polls".to_string()
                } else {
                    location_name(names, location)
                },
                samples,
                functions,
                folded,
                app_frame: app_frame.map(|(_, f)| f),
            }
        })
        .collect();
    out.sort_by(|a, b| (b.samples, &a.location).cmp(&(a.samples, &b.location)));
    out
}
