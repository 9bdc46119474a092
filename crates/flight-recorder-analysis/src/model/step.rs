//! The transitions of the state machine: one step per event, and the close at the end of the
//! window.

use flight_recorder_format::args;

use super::*;

impl Model {
    /// A model that has seen nothing.
    pub fn new() -> Model {
        Model {
            tasks: TaskTable::default(),
            threads: Vec::new(),
            thread_ids: DenseIds::default(),
            user_tasks: IdMap::default(),
            next_uid: 1,
            next_flow: 1,
            window_start: u64::MAX,
            window_end: 0,
            edges: EdgeStats::default(),
        }
    }

    /// The time span of the events seen so far.
    pub fn window(&self) -> Option<(u64, u64)> {
        (self.window_start <= self.window_end).then_some((self.window_start, self.window_end))
    }

    /// What could not be paired so far.
    pub fn edges(&self) -> &EdgeStats {
        &self.edges
    }

    #[inline]
    fn thread(&mut self, id: u64, time: u64) -> usize {
        let (index, new) = self.thread_ids.index(id);
        if new {
            self.threads.push(ThreadState {
                id,
                polls: Vec::new(),
                regions: Vec::new(),
                notes: Vec::new(),
                worker: None,
                first: time,
            });
        }
        index
    }

    fn new_task(&mut self, id: u64, start: u64, phase: Phase) -> TaskState {
        let uid = self.next_uid;
        self.next_uid += 1;
        TaskState {
            task: TaskRef {
                id,
                uid,
                location: 0,
            },
            parent: 0,
            spawned: false,
            start,
            phase,
            woken_while_running: None,
            terminate_after_poll: false,
            run: 0,
            sched_wait: 0,
            idle: 0,
            polls: 0,
            longest_poll: 0,
        }
    }

    /// Whether thread `th`'s innermost open poll is one of task `task` (not 0).
    #[inline]
    fn in_poll_of(&self, th: usize, task: u64) -> bool {
        task != 0
            && self.threads[th]
                .polls
                .last()
                .is_some_and(|p| p.task == task)
    }

    fn flow(&mut self) -> u64 {
        let flow = self.next_flow;
        self.next_flow += 1;
        flow
    }

    /// Handles one event.
    pub fn step<O: Observer + ?Sized>(&mut self, names: &dyn Names, ev: &Ev, obs: &mut O) {
        let t = ev.time;
        let th = self.thread(ev.thread, t);
        obs.event_on_thread(names, ev, th);
        self.window_start = self.window_start.min(t);
        self.window_end = self.window_end.max(t);
        // The kinds of nearly every event, here; the others apart, out of this path. A kind
        // with fewer arguments than this version knows goes there too, to be ignored.
        const POLL_START: u8 = EventKind::PollStart as u8;
        const POLL_START_SCHEDULED: u8 = EventKind::PollStartScheduled as u8;
        const POLL_END: u8 = EventKind::PollEnd as u8;
        const TASK_WAKE: u8 = EventKind::TaskWake as u8;
        match ev.kind {
            POLL_START if ev.arg_count >= 1 => {
                let args::PollStart { task } = ev.args_as();
                self.poll_start(names, th, task, t, None, obs)
            }
            POLL_START_SCHEDULED if ev.arg_count >= 2 => {
                let args::PollStartScheduled { task, scheduled_ns } = ev.args_as();
                self.poll_start(names, th, task, t, Some(scheduled_ns), obs)
            }
            POLL_END if ev.arg_count >= 2 => {
                let args::PollEnd { task, result } = ev.args_as();
                self.poll_end(names, th, task, result, t, obs)
            }
            TASK_WAKE if ev.arg_count >= 2 => {
                let args::TaskWake { task, waker } = ev.args_as();
                self.wake(names, task, waker, th, t, obs)
            }
            _ => self.step_other(names, ev, th, obs),
        }
    }

    /// [`Model::step`] for the kinds other than poll starts and ends and wakes.
    #[inline(never)]
    fn step_other<O: Observer + ?Sized>(
        &mut self,
        names: &dyn Names,
        ev: &Ev,
        th: usize,
        obs: &mut O,
    ) {
        let t = ev.time;
        let Some(kind) = EventKind::from_byte(ev.kind) else {
            return;
        };
        if usize::from(ev.arg_count) < kind.arg_count() {
            return; // a layout this version does not know; counted by kind only
        }
        match kind {
            EventKind::PollStart => {
                let args::PollStart { task } = ev.args_as();
                self.poll_start(names, th, task, t, None, obs)
            }
            EventKind::PollStartScheduled => {
                let args::PollStartScheduled { task, scheduled_ns } = ev.args_as();
                self.poll_start(names, th, task, t, Some(scheduled_ns), obs)
            }
            EventKind::PollEnd => {
                let args::PollEnd { task, result } = ev.args_as();
                self.poll_end(names, th, task, result, t, obs)
            }
            EventKind::TaskWake => {
                let args::TaskWake { task, waker } = ev.args_as();
                self.wake(names, task, waker, th, t, obs)
            }
            EventKind::TaskSpawn => {
                let args::TaskSpawn {
                    task,
                    location,
                    parent,
                } = ev.args_as();
                self.spawn(names, task, location, parent, th, t, obs)
            }
            EventKind::TaskTerminate => {
                let args::TaskTerminate { task: id } = ev.args_as();
                if let Some(state) = self.tasks.get_mut(id) {
                    if matches!(state.phase, Phase::Running) {
                        state.terminate_after_poll = true;
                    } else {
                        let (slot, state) = self.tasks.remove(id).expect("present");
                        self.done(names, slot, state, t, true, obs);
                    }
                }
            }
            EventKind::WorkerPark => {
                let thread = &mut self.threads[th];
                match thread.worker {
                    Some(WorkerPhase::Busy(since)) => obs.busy(thread.id, since, t),
                    // A worker runs from its start until it first parks (the runtime may tell
                    // the thread's role late).
                    None | Some(WorkerPhase::Unknown) => obs.busy(thread.id, thread.first, t),
                    Some(WorkerPhase::Idle) => {}
                }
                thread.worker = Some(WorkerPhase::Idle);
            }
            EventKind::WorkerUnpark => {
                let thread = &mut self.threads[th];
                if let Some(WorkerPhase::Busy(_)) = thread.worker {
                    return;
                }
                thread.worker = Some(WorkerPhase::Busy(t));
            }
            EventKind::RuntimeThread => {
                let thread = &mut self.threads[th];
                let args::RuntimeThread { role: r, .. } = ev.args_as();
                if r == role::WORKER && thread.worker.is_none() {
                    thread.worker = Some(WorkerPhase::Unknown);
                }
            }
            EventKind::ThreadExit => {
                let thread = &mut self.threads[th];
                match thread.worker {
                    Some(WorkerPhase::Busy(since)) => obs.busy(thread.id, since, t),
                    Some(WorkerPhase::Unknown) => obs.busy(thread.id, thread.first, t),
                    _ => {}
                }
                if thread.worker.is_some() {
                    thread.worker = Some(WorkerPhase::Idle);
                }
            }
            EventKind::RegionBegin => {
                let thread = &mut self.threads[th];
                if thread.regions.len() >= MAX_REGION_DEPTH {
                    self.edges.regions_too_deep += 1;
                    return;
                }
                let args::RegionBegin { name, user_task } = ev.args_as();
                let region = OpenRegion {
                    name,
                    user_task,
                    begin: t,
                    thread: ev.thread,
                    task: thread.polls.last().map_or(0, |p| p.uid),
                };
                thread.regions.push(region);
                if !thread.polls.is_empty() && thread.notes.len() < MAX_POLL_NOTES {
                    thread.notes.push(Note::Region {
                        name: region.name,
                        user_task: region.user_task,
                    });
                }
                obs.region_begin(names, &region);
            }
            EventKind::RegionEnd => {
                let args::RegionEnd { name, user_task } = ev.args_as();
                self.region_end(names, th, name, user_task, t, obs)
            }
            EventKind::Log => {
                let thread = &mut self.threads[th];
                if !thread.polls.is_empty() && thread.notes.len() < MAX_POLL_NOTES {
                    let message = ev
                        .payload
                        .as_deref()
                        .map(|p| String::from_utf8_lossy(&p[..p.len().min(200)]).into_owned())
                        .unwrap_or_default();
                    let args::Log { category, .. } = ev.args_as();
                    thread.notes.push(Note::Log { category, message });
                }
            }
            EventKind::UserTaskBegin => {
                let args::UserTaskBegin {
                    user_task,
                    parent,
                    name,
                } = ev.args_as();
                let span = UserTaskSpan {
                    id: user_task,
                    parent,
                    name,
                    thread: ev.thread,
                    begin: t,
                    end: t,
                    truncated: false,
                };
                if let Some(previous) = self.user_tasks.insert(span.id, span) {
                    // A begin again for an open id: close the first one here.
                    let mut previous = previous;
                    previous.end = t;
                    obs.user_task_end(names, &previous);
                }
                obs.user_task_begin(names, span.id, span.parent, span.name, t);
            }
            EventKind::UserTaskEnd => match self
                .user_tasks
                .remove(&ev.args_as::<args::UserTaskEnd>().user_task)
            {
                Some(mut span) => {
                    span.end = t.max(span.begin);
                    obs.user_task_end(names, &span);
                }
                None => self.edges.user_task_ends_without_begin += 1,
            },
            _ => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn spawn<O: Observer + ?Sized>(
        &mut self,
        names: &dyn Names,
        id: u64,
        location: u64,
        parent: u64,
        th: usize,
        t: u64,
        obs: &mut O,
    ) {
        let wake = WakeRef {
            time: t,
            thread: self.threads[th].id,
            waker: parent,
            spawn: true,
            in_waker_poll: self.in_poll_of(th, parent),
            flow: self.flow(),
        };
        if let Some(existing) = self.tasks.get_mut(id) {
            if !existing.spawned && existing.start >= t {
                // The spawn arrived after the task's first events (a late chunk): same task.
                existing.spawned = true;
                existing.task.location = location;
                existing.parent = parent;
                existing.start = t;
                return;
            }
            // The id was reused: the old task ended without a terminate in the window.
            let (slot, old) = self.tasks.remove(id).expect("present");
            self.done(names, slot, old, t, true, obs);
        }
        let mut state = self.new_task(id, t, Phase::Runnable(t, Some(wake)));
        state.spawned = true;
        state.task.location = location;
        state.parent = parent;
        self.tasks.insert(id, state);
    }

    fn wake<O: Observer + ?Sized>(
        &mut self,
        names: &dyn Names,
        id: u64,
        waker: u64,
        th: usize,
        t: u64,
        obs: &mut O,
    ) {
        let flow = self.flow();
        let wake = WakeRef {
            time: t,
            thread: self.threads[th].id,
            waker,
            spawn: false,
            in_waker_poll: self.in_poll_of(th, waker),
            flow,
        };
        let slot = match self.tasks.find(id) {
            Some((slot, state)) => {
                match state.phase {
                    Phase::Idle(since) => {
                        state.idle += t.saturating_sub(since);
                        state.phase = Phase::Runnable(t, Some(wake));
                    }
                    Phase::Running => {
                        if state.woken_while_running.is_none() {
                            state.woken_while_running = Some(wake);
                        }
                    }
                    Phase::Runnable(..) => {}
                }
                slot
            }
            None => {
                let state = self.new_task(id, t, Phase::Runnable(t, Some(wake)));
                self.tasks.insert(id, state)
            }
        };
        obs.task_woken(
            names,
            &TaskWoken {
                task: id,
                task_index: slot,
                thread_index: th,
                wake,
            },
        );
    }

    /// Makes a task ready for a poll that is not the common case: closes a poll of it still open
    /// somewhere (its end was lost) and creates the task when it was never seen. Returns its slot.
    fn prepare_poll<O: Observer + ?Sized>(
        &mut self,
        names: &dyn Names,
        id: u64,
        t: u64,
        latency: Option<u64>,
        obs: &mut O,
    ) -> usize {
        if let Some(Phase::Running) = self.tasks.get_mut(id).map(|s| s.phase) {
            for index in 0..self.threads.len() {
                if let Some(pos) = self.threads[index].polls.iter().rposition(|p| p.task == id) {
                    self.close_polls(names, index, pos, t, PollResult::Truncated, obs);
                    break;
                }
            }
        }
        if let Some(slot) = self.tasks.slot(id) {
            return slot;
        }
        let window_start = self.window().map_or(t, |w| w.0);
        let start = latency.map_or(t, |l| t.saturating_sub(l).max(window_start));
        let state = self.new_task(id, start, Phase::Idle(start));
        self.tasks.insert(id, state)
    }

    fn poll_start<O: Observer + ?Sized>(
        &mut self,
        names: &dyn Names,
        th: usize,
        id: u64,
        t: u64,
        latency: Option<u64>,
        obs: &mut O,
    ) {
        // The common case, in one lookup: a known task that is not running.
        let known = self.tasks.slot(id);
        let running = known
            .and_then(|slot| self.tasks.at(slot))
            .is_some_and(|state| matches!(state.phase, Phase::Running));
        let slot = match known {
            Some(slot) if !running => slot,
            _ => self.prepare_poll(names, id, t, latency, obs),
        };
        if let Some(state) = self.tasks.at(slot) {
            Self::begin_poll(
                state,
                slot,
                th,
                &mut self.threads[th],
                names,
                id,
                t,
                latency,
                obs,
            );
        }
    }

    /// The poll of `state`'s task starts on `thread`, the model's thread `th`.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn begin_poll<O: Observer + ?Sized>(
        state: &mut TaskState,
        slot: usize,
        th: usize,
        thread: &mut ThreadState,
        names: &dyn Names,
        id: u64,
        t: u64,
        latency: Option<u64>,
        obs: &mut O,
    ) {
        let (sched_wait, wake) = match state.phase {
            Phase::Runnable(since, wake) => {
                let gap = t.saturating_sub(since);
                let wait = latency.map_or(gap, |l| l.min(gap));
                state.idle += gap - wait;
                (Some(wait), wake)
            }
            Phase::Idle(since) => {
                let gap = t.saturating_sub(since);
                match latency {
                    Some(l) => {
                        let wait = l.min(gap);
                        state.idle += gap - wait;
                        (Some(wait), None)
                    }
                    None => {
                        state.idle += gap;
                        (None, None)
                    }
                }
            }
            Phase::Running => (latency, None),
        };
        // With a runtime measure, it is the wait (even when it reaches before the window).
        let sched_wait = match (latency, sched_wait) {
            (Some(l), Some(_)) => Some(l),
            (_, other) => other,
        };
        if let Some(wait) = sched_wait {
            let counted = match state.phase {
                Phase::Runnable(since, _) | Phase::Idle(since) => wait.min(t.saturating_sub(since)),
                Phase::Running => 0,
            };
            state.sched_wait += counted;
        }
        state.phase = Phase::Running;
        state.woken_while_running = None;
        let task = state.task;
        let thread_id = thread.id;
        if thread.polls.is_empty() {
            thread.notes.clear();
        }
        thread.polls.push(OpenPoll {
            task: id,
            uid: task.uid,
            start: t,
            slot,
        });
        obs.poll_begin(
            names,
            &PollBegin {
                thread: thread_id,
                thread_index: th,
                task,
                task_index: slot,
                time: t,
                sched_wait,
                wake,
            },
        );
    }

    fn poll_end<O: Observer + ?Sized>(
        &mut self,
        names: &dyn Names,
        th: usize,
        id: u64,
        result: u64,
        t: u64,
        obs: &mut O,
    ) {
        let result = match result {
            0 => PollResult::Pending,
            1 => PollResult::Ready,
            _ => PollResult::Unreported,
        };
        match self.threads[th].polls.iter().rposition(|p| p.task == id) {
            Some(pos) => self.close_polls(names, th, pos, t, result, obs),
            None => {
                self.edges.poll_ends_without_start += 1;
                // The task's state still moves on.
                let window_start = self.window().map_or(t, |w| w.0);
                match self.tasks.get_mut(id) {
                    Some(state) => state.phase = Phase::Running,
                    None => {
                        let state = self.new_task(id, window_start, Phase::Running);
                        self.tasks.insert(id, state);
                    }
                }
                self.after_poll(names, id, t, result, obs);
            }
        }
    }

    /// Ends the polls of thread `th` from stack position `pos` up (inner ones first; those above
    /// `pos` lost their end and are cut at `t`).
    fn close_polls<O: Observer + ?Sized>(
        &mut self,
        names: &dyn Names,
        th: usize,
        pos: usize,
        t: u64,
        result: PollResult,
        obs: &mut O,
    ) {
        while self.threads[th].polls.len() > pos {
            let open = self.threads[th].polls.pop().expect("non-empty");
            let this_result = if self.threads[th].polls.len() == pos {
                result
            } else {
                PollResult::Truncated
            };
            let end = t.max(open.start);
            let duration = end - open.start;
            let mut state = self.tasks.get_mut_at(open.task, open.slot);
            let task = match &mut state {
                Some((_, state)) => {
                    state.run += duration;
                    state.polls += 1;
                    state.longest_poll = state.longest_poll.max(duration);
                    state.task
                }
                None => TaskRef {
                    id: open.task,
                    uid: 0,
                    location: 0,
                },
            };
            let thread = &self.threads[th];
            obs.poll_end(
                names,
                &PollEnd {
                    thread: thread.id,
                    thread_index: th,
                    task,
                    start: open.start,
                    end,
                    result: this_result,
                },
                &thread.regions,
                &thread.notes,
            );
            // What `after_poll` does, without looking the task up again.
            if let Some((_, state)) = state {
                if this_result == PollResult::Ready || state.terminate_after_poll {
                    let (slot, state) = self.tasks.remove(open.task).expect("present");
                    self.done(names, slot, state, end, true, obs);
                } else {
                    state.phase = match state.woken_while_running.take() {
                        Some(wake) => Phase::Runnable(end, Some(wake)),
                        None => Phase::Idle(end),
                    };
                }
            }
        }
    }

    fn after_poll<O: Observer + ?Sized>(
        &mut self,
        names: &dyn Names,
        id: u64,
        t: u64,
        result: PollResult,
        obs: &mut O,
    ) {
        let Some(state) = self.tasks.get_mut(id) else {
            return;
        };
        if result == PollResult::Ready || state.terminate_after_poll {
            let (slot, state) = self.tasks.remove(id).expect("present");
            self.done(names, slot, state, t, true, obs);
            return;
        }
        state.phase = match state.woken_while_running.take() {
            Some(wake) => Phase::Runnable(t, Some(wake)),
            None => Phase::Idle(t),
        };
    }

    fn region_end<O: Observer + ?Sized>(
        &mut self,
        names: &dyn Names,
        th: usize,
        name: u64,
        user_task: u64,
        t: u64,
        obs: &mut O,
    ) {
        let thread_id = self.threads[th].id;
        // The task being polled now on this thread (uid; 0: none).
        let polled = self.threads[th].polls.last().map_or(0, |p| p.uid);
        let same = |r: &OpenRegion| r.name == name && r.user_task == user_task;
        let mut found = self.threads[th]
            .regions
            .iter()
            .rposition(|r| same(r) && (r.task == 0 || polled == 0 || r.task == polled))
            .map(|pos| (th, pos));
        let elsewhere = |threads: &[ThreadState], ok: &dyn Fn(&OpenRegion) -> bool| {
            threads.iter().enumerate().find_map(|(index, thread)| {
                thread.regions.iter().rposition(ok).map(|pos| (index, pos))
            })
        };
        if found.is_none() && user_task != 0 {
            found = elsewhere(&self.threads, &same);
        }
        if found.is_none() && polled != 0 {
            found = elsewhere(&self.threads, &|r: &OpenRegion| same(r) && r.task == polled);
        }
        let Some((index, pos)) = found else {
            self.edges.region_ends_without_begin += 1;
            return;
        };
        let open = self.threads[index].regions.remove(pos);
        let thread = &mut self.threads[th];
        if !thread.polls.is_empty() && thread.notes.len() < MAX_POLL_NOTES {
            thread.notes.push(Note::Region { name, user_task });
        }
        obs.region_end(
            names,
            &RegionSpan {
                name,
                user_task,
                thread: open.thread,
                end_thread: thread_id,
                begin: open.begin,
                end: t.max(open.begin),
                truncated: false,
            },
        );
    }

    fn done<O: Observer + ?Sized>(
        &mut self,
        names: &dyn Names,
        slot: usize,
        mut state: TaskState,
        t: u64,
        ended: bool,
        obs: &mut O,
    ) {
        match state.phase {
            Phase::Idle(since) => state.idle += t.saturating_sub(since),
            Phase::Runnable(since, _) => state.sched_wait += t.saturating_sub(since),
            Phase::Running => {}
        }
        obs.task_done(
            names,
            &TaskDone {
                task: state.task,
                task_index: slot,
                parent: state.parent,
                spawned: state.spawned,
                ended,
                start: state.start,
                end: t.max(state.start),
                run: state.run,
                sched_wait: state.sched_wait,
                idle: state.idle,
                polls: state.polls,
                longest_poll: state.longest_poll,
            },
        );
    }

    /// Closes everything still open at the end of the window and reports the end.
    pub fn finish<O: Observer + ?Sized>(&mut self, names: &dyn Names, obs: &mut O) {
        let end = self.window().map_or(0, |w| w.1);
        for th in 0..self.threads.len() {
            let open = self.threads[th].polls.len() as u64;
            if open > 0 {
                self.edges.polls_open_at_end += open;
                self.close_polls(names, th, 0, end, PollResult::Truncated, obs);
            }
            let thread = &mut self.threads[th];
            match thread.worker {
                Some(WorkerPhase::Busy(since)) => obs.busy(thread.id, since, end),
                Some(WorkerPhase::Unknown) => obs.busy(thread.id, thread.first, end),
                _ => {}
            }
            if thread.worker.is_some() {
                thread.worker = Some(WorkerPhase::Idle);
            }
            let regions = std::mem::take(&mut thread.regions);
            let thread_id = thread.id;
            for open in regions.into_iter().rev() {
                self.edges.regions_open_at_end += 1;
                obs.region_end(
                    names,
                    &RegionSpan {
                        name: open.name,
                        user_task: open.user_task,
                        thread: open.thread,
                        end_thread: thread_id,
                        begin: open.begin,
                        end: end.max(open.begin),
                        truncated: true,
                    },
                );
            }
        }
        let mut user_tasks: Vec<UserTaskSpan> = self.user_tasks.drain().map(|(_, s)| s).collect();
        user_tasks.sort_by_key(|s| (s.begin, s.id));
        for mut span in user_tasks {
            self.edges.user_tasks_open_at_end += 1;
            span.end = end.max(span.begin);
            span.truncated = true;
            obs.user_task_end(names, &span);
        }
        let mut tasks = self.tasks.drain();
        tasks.sort_by_key(|(_, s)| s.task.uid);
        for (slot, state) in tasks {
            self.edges.tasks_alive_at_end += 1;
            self.done(names, slot, state, end, false, obs);
        }
        obs.finish(names, self.window(), &self.edges);
    }
}
