//! User tasks and regions by name: counts, latency percentiles and the slowest instances.

use super::{keep_top, string_or_id};
use crate::histogram::Histogram;
use crate::merge::Names;
use crate::model::{IdMap, Observer, RegionSpan, UserTaskSpan};
use crate::summary::{SpanGroup, SpanInstance};

#[derive(Debug, Default)]
struct SpanAcc {
    count: u64,
    unfinished: u64,
    latency: Histogram,
    slowest: Vec<SpanInstance>,
}

impl SpanAcc {
    fn add(&mut self, instance: SpanInstance, top: usize) {
        if instance.unfinished {
            self.unfinished += 1;
        } else {
            self.count += 1;
            self.latency.record(instance.duration_ns);
        }
        keep_top(&mut self.slowest, instance, top, |i| i.duration_ns);
    }
}

/// The analysis of user tasks and regions (see the module's docs).
pub(super) struct SpanStats {
    top: usize,
    user_tasks: IdMap<SpanAcc>,
    regions: IdMap<SpanAcc>,
}

impl SpanStats {
    /// Keeps the `top` slowest instances of each name.
    pub(super) fn new(top: usize) -> SpanStats {
        SpanStats {
            top,
            user_tasks: IdMap::default(),
            regions: IdMap::default(),
        }
    }
}

impl Observer for SpanStats {
    fn region_end(&mut self, _names: &dyn Names, region: &RegionSpan) {
        let top = self.top;
        self.regions.entry(region.name).or_default().add(
            SpanInstance {
                id: region.user_task,
                thread: region.thread,
                start_ns: region.begin,
                duration_ns: region.end.saturating_sub(region.begin),
                unfinished: region.truncated,
            },
            top,
        );
    }

    fn user_task_end(&mut self, _names: &dyn Names, task: &UserTaskSpan) {
        let top = self.top;
        self.user_tasks.entry(task.name).or_default().add(
            SpanInstance {
                id: task.id,
                thread: task.thread,
                start_ns: task.begin,
                duration_ns: task.end.saturating_sub(task.begin),
                unfinished: task.truncated,
            },
            top,
        );
    }
}

impl SpanStats {
    /// The user tasks and the regions, by name, the highest p99 first.
    pub(super) fn finish(self, names: &dyn Names) -> (Vec<SpanGroup>, Vec<SpanGroup>) {
        let groups = |map: &IdMap<SpanAcc>| -> Vec<SpanGroup> {
            let mut out: Vec<SpanGroup> = map
                .iter()
                .map(|(&name, acc)| SpanGroup {
                    name: string_or_id(names, name),
                    count: acc.count,
                    unfinished: acc.unfinished,
                    latency: acc.latency.percentiles(),
                    slowest: acc.slowest.clone(),
                })
                .collect();
            out.sort_by(|a, b| b.latency.p99.cmp(&a.latency.p99).then(a.name.cmp(&b.name)));
            out
        };
        let user_tasks = groups(&self.user_tasks);
        let regions = groups(&self.regions);
        (user_tasks, regions)
    }
}
