#!/usr/bin/env python3
"""An independent check of a Perfetto trace written by `flight-recorder convert --to perfetto`.

Decodes the file with the Perfetto trace schema of the PyPI package `perfetto` (its Python
protobuf classes) and fails, with one line per problem on stderr and exit status 1, on:

- fields the schema does not know (at any depth), found by walking the wire format against the
  schema's descriptors, and a parse error of the real protobuf parser;
- packed repeated scalar fields (the Perfetto protos are proto2 and not packed);
- track events on a track that no TrackDescriptor defines, and descriptors whose parent_uuid is
  not defined; task tracks ("task ...") whose parent is a process or thread track (the UI would
  not nest them), or not a spawn location's group under the "tasks" track;
- slices that do not balance on a track (an END without an open BEGIN, or a BEGIN never ended),
  after sorting each track's events by timestamp (stable, as the trace processor does);
- interned event names, categories and debug annotation names used before the sequence defined
  them (after its last SEQ_INCREMENTAL_STATE_CLEARED), packets that need incremental state
  before any CLEARED, and names that are neither interned nor inline;
- timestamps on a clock no ClockSnapshot defined: sequence-scoped clocks (ids 64 to 127) are
  resolved as the trace processor does, incremental ones (each timestamp the difference from the
  previous one on that clock, as a two's complement 64-bit number) included, through
  TracePacketDefaults.timestamp_clock_id when a packet names no clock;
- track events without a track (neither their own track_uuid nor the sequence's
  TrackEventDefaults);
- flows with only one end, matched in time order as the trace processor matches them (an id
  serves again once a terminating id has ended its flow): a flow_ids entry never terminated, a
  terminating id with no flow open, an id begun again while its flow is open or at the very
  instant it ended (either order could be taken); the varint flow_ids_old and
  terminating_flow_ids_old count too;
- no ClockSnapshot, or a track event without a timestamp;
- stack samples (`PerfSample`) whose interned ids do not resolve in their sequence: the
  callstack, its frames, each frame's function name, mapping and source path, each mapping's
  build id and path components.

On success prints a JSON object with counts (packets, tracks by kind, thread names, slices by
category, instants, counters, flows, debug annotations by name) and the names of the tracks
whose children are ordered by time on stdout for the calling test to check.

Usage: perfetto_check.py FILE
"""

import collections
import json
import sys

from google.protobuf import descriptor as gpd

try:
    from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as pb
except ImportError as e:  # pragma: no cover - reported to the test
    print(f"cannot import the perfetto protos: {e}", file=sys.stderr)
    sys.exit(2)

SEQ_CLEARED = 1
SEQ_NEEDS = 2
SLICE_BEGIN, SLICE_END, INSTANT, COUNTER = 1, 2, 3, 4
BOOTTIME = 6

SCALAR_WIRE = {
    gpd.FieldDescriptor.TYPE_DOUBLE: 1,
    gpd.FieldDescriptor.TYPE_FLOAT: 5,
    gpd.FieldDescriptor.TYPE_INT64: 0,
    gpd.FieldDescriptor.TYPE_UINT64: 0,
    gpd.FieldDescriptor.TYPE_INT32: 0,
    gpd.FieldDescriptor.TYPE_FIXED64: 1,
    gpd.FieldDescriptor.TYPE_FIXED32: 5,
    gpd.FieldDescriptor.TYPE_BOOL: 0,
    gpd.FieldDescriptor.TYPE_UINT32: 0,
    gpd.FieldDescriptor.TYPE_ENUM: 0,
    gpd.FieldDescriptor.TYPE_SFIXED32: 5,
    gpd.FieldDescriptor.TYPE_SFIXED64: 1,
    gpd.FieldDescriptor.TYPE_SINT32: 0,
    gpd.FieldDescriptor.TYPE_SINT64: 0,
}

problems = []


def problem(text):
    problems.append(text)


def is_repeated(field):
    # protobuf >= 6 drops `label` in favour of `is_repeated`.
    if hasattr(field, "is_repeated"):
        return field.is_repeated
    return field.label == gpd.FieldDescriptor.LABEL_REPEATED


def read_varint(buf, pos):
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("varint runs past the end")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def walk(buf, desc, path):
    """Walks `buf` as message `desc`: unknown fields, wrong wire types, packed repeats."""
    pos = 0
    fields = desc.fields_by_number
    while pos < len(buf):
        key, pos = read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, pos = read_varint(buf, pos)
            payload = None
        elif wire == 1:
            pos += 8
            payload = None
        elif wire == 5:
            pos += 4
            payload = None
        elif wire == 2:
            length, pos = read_varint(buf, pos)
            payload = buf[pos : pos + length]
            if len(payload) != length:
                raise ValueError(f"{path}: field {number} runs past the end")
            pos += length
        else:
            raise ValueError(f"{path}: field {number} has wire type {wire}")
        field = fields.get(number)
        if field is None:
            problem(f"unknown field {number} (wire type {wire}) in {path}")
            continue
        where = f"{path}.{field.name}"
        if field.type == gpd.FieldDescriptor.TYPE_MESSAGE:
            if wire != 2:
                problem(f"{where}: a message with wire type {wire}")
                continue
            walk(payload, field.message_type, where)
        elif field.type in (gpd.FieldDescriptor.TYPE_STRING, gpd.FieldDescriptor.TYPE_BYTES):
            if wire != 2:
                problem(f"{where}: text with wire type {wire}")
        else:
            expected = SCALAR_WIRE[field.type]
            if wire == 2 and is_repeated(field):
                problem(f"{where}: packed repeated field")
            elif wire != expected:
                problem(f"{where}: wire type {wire}, expected {expected}")


def main(path):
    data = open(path, "rb").read()
    trace_desc = pb.Trace.DESCRIPTOR
    try:
        walk(data, trace_desc, "Trace")
    except ValueError as e:
        problem(f"malformed protobuf: {e}")
    trace = pb.Trace()
    try:
        trace.ParseFromString(data)
    except Exception as e:  # noqa: BLE001 - any parse failure is a problem
        problem(f"the protobuf parser rejects the file: {e}")
        return finish(None)

    tracks = {}  # uuid -> descriptor
    interned = {}  # sequence -> {iid: name}
    categories = {}  # sequence -> {iid: name}
    annotation_names = {}  # sequence -> {iid: name}
    defaults = {}  # sequence -> TracePacketDefaults
    clocks = {}  # (sequence, clock id) -> [incremental, last value, offset to BOOTTIME]
    arg_counts = collections.Counter()
    profiling = {}  # sequence -> {table: {iid: message}}
    sample_functions = set()
    sample_tids = set()
    cleared = set()
    clock_snapshots = 0
    events_by_track = collections.defaultdict(list)
    flow_events = []  # (timestamp, packet index, 0 start / 1 end, flow id)
    counts = collections.Counter()
    slices_by_category = collections.Counter()
    names_by_category = collections.defaultdict(set)

    for index, packet in enumerate(trace.packet):
        seq = packet.trusted_packet_sequence_id
        flags = packet.sequence_flags
        if flags & SEQ_CLEARED:
            cleared.add(seq)
            interned[seq] = {}
            categories[seq] = {}
            annotation_names[seq] = {}
            defaults.pop(seq, None)
            profiling[seq] = collections.defaultdict(dict)
        if flags & SEQ_NEEDS and seq not in cleared:
            problem(f"packet {index} needs incremental state before sequence {seq} cleared it")
        if packet.HasField("interned_data"):
            if seq not in cleared:
                problem(f"packet {index} interns data before sequence {seq} was cleared")
            for name in packet.interned_data.event_names:
                interned.setdefault(seq, {})[name.iid] = name.name
            for name in packet.interned_data.event_categories:
                categories.setdefault(seq, {})[name.iid] = name.name
            for name in packet.interned_data.debug_annotation_names:
                annotation_names.setdefault(seq, {})[name.iid] = name.name
            tables = profiling.setdefault(seq, collections.defaultdict(dict))
            for table in ("function_names", "build_ids", "mapping_paths", "source_paths",
                          "mappings", "frames", "callstacks"):
                for item in getattr(packet.interned_data, table):
                    tables[table][item.iid] = item
        if packet.HasField("perf_sample"):
            counts["perf_samples"] += 1
            sample = packet.perf_sample
            sample_tids.add(sample.tid)
            tables = profiling.get(seq, {}) if seq in cleared else {}
            if not packet.HasField("timestamp"):
                problem(f"packet {index}: a sample without timestamp")

            def resolve(table, iid, what):
                item = tables.get(table, {}).get(iid) if tables else None
                if item is None:
                    problem(f"packet {index}: {what} {table} iid {iid} not interned in "
                            f"sequence {seq}")
                return item

            stack = resolve("callstacks", sample.callstack_iid, "sample's")
            if stack is not None:
                if not stack.frame_ids:
                    problem(f"packet {index}: an empty callstack")
                for fid in stack.frame_ids:
                    frame = resolve("frames", fid, "callstack's")
                    if frame is None:
                        continue
                    fname = resolve("function_names", frame.function_name_id, "frame's")
                    if fname is not None:
                        sample_functions.add(fname.str.decode("utf-8", "replace"))
                    mapping = resolve("mappings", frame.mapping_id, "frame's")
                    if frame.HasField("source_path_iid"):
                        resolve("source_paths", frame.source_path_iid, "frame's")
                    if mapping is not None:
                        if mapping.HasField("build_id"):
                            resolve("build_ids", mapping.build_id, "mapping's")
                        for part in mapping.path_string_ids:
                            resolve("mapping_paths", part, "mapping's")
        if packet.HasField("trace_packet_defaults"):
            if seq not in cleared:
                problem(f"packet {index} sets defaults before sequence {seq} was cleared")
            defaults[seq] = packet.trace_packet_defaults
        if packet.HasField("clock_snapshot"):
            clock_snapshots += 1
            snapshot = {c.clock_id: c for c in packet.clock_snapshot.clocks}
            boot = snapshot.get(BOOTTIME)
            for clock_id, c in snapshot.items():
                if 64 <= clock_id < 128:
                    if boot is None:
                        problem(f"packet {index}: sequence clock {clock_id} without BOOTTIME")
                        continue
                    unit = c.unit_multiplier_ns if c.HasField("unit_multiplier_ns") else 1
                    if unit != 1:
                        problem(f"packet {index}: clock {clock_id} unit {unit} not checked")
                    clocks[(seq, clock_id)] = [
                        c.is_incremental,
                        c.timestamp,
                        boot.timestamp - c.timestamp,
                    ]
                elif c.is_incremental:
                    problem(f"packet {index}: global clock {clock_id} is incremental")
        timestamp = None
        if packet.HasField("timestamp"):
            timestamp = packet.timestamp
            clock_id = packet.timestamp_clock_id
            if not packet.HasField("timestamp_clock_id") and seq in defaults:
                clock_id = defaults[seq].timestamp_clock_id
            if 64 <= clock_id < 128:
                clock = clocks.get((seq, clock_id))
                if clock is None:
                    problem(f"packet {index}: timestamp on clock {clock_id}, undefined in "
                            f"sequence {seq}")
                elif clock[0]:
                    delta = timestamp - (1 << 64) if timestamp >= 1 << 63 else timestamp
                    clock[1] += delta
                    timestamp = clock[1] + clock[2]
                else:
                    timestamp += clock[2]
            elif clock_id not in (0, BOOTTIME):
                problem(f"packet {index}: timestamp on clock {clock_id}, not checked")
        if packet.HasField("track_descriptor"):
            d = packet.track_descriptor
            if not d.HasField("uuid"):
                problem(f"packet {index}: a track descriptor without uuid")
            tracks[d.uuid] = d
        if packet.HasField("track_event"):
            e = packet.track_event
            counts["track_events"] += 1
            if not packet.HasField("timestamp"):
                problem(f"packet {index}: a track event without timestamp")
            name = None
            if e.HasField("name_iid"):
                table = interned.get(seq, {}) if seq in cleared else {}
                if e.name_iid not in table:
                    problem(
                        f"packet {index}: name_iid {e.name_iid} used before sequence {seq} "
                        "defined it"
                    )
                else:
                    name = table[e.name_iid]
            elif e.HasField("name"):
                name = e.name
            elif e.type in (SLICE_BEGIN, INSTANT):
                problem(f"packet {index}: a slice or instant without a name")
            category = e.categories[0] if len(e.categories) else ""
            if len(e.category_iids):
                table = categories.get(seq, {}) if seq in cleared else {}
                category = table.get(e.category_iids[0])
                if category is None:
                    problem(f"packet {index}: category_iid {e.category_iids[0]} used before "
                            f"sequence {seq} defined it")
                    category = ""
            for a in e.debug_annotations:
                if a.HasField("name_iid"):
                    table = annotation_names.get(seq, {}) if seq in cleared else {}
                    arg = table.get(a.name_iid)
                    if arg is None:
                        problem(f"packet {index}: debug annotation name_iid {a.name_iid} used "
                                f"before sequence {seq} defined it")
                        continue
                elif a.HasField("name"):
                    arg = a.name
                else:
                    problem(f"packet {index}: a debug annotation without a name")
                    continue
                arg_counts[arg] += 1
            track = e.track_uuid
            if not e.HasField("track_uuid"):
                track_defaults = defaults.get(seq)
                if track_defaults is not None and track_defaults.HasField("track_event_defaults"):
                    track = track_defaults.track_event_defaults.track_uuid
                else:
                    problem(f"packet {index}: a track event without a track")
            events_by_track[track].append((timestamp, index, e.type, name, category))
            for flow in list(e.flow_ids) + list(e.flow_ids_old):
                flow_events.append((timestamp, index, 0, flow))
            for flow in list(e.terminating_flow_ids) + list(e.terminating_flow_ids_old):
                flow_events.append((timestamp, index, 1, flow))
            if e.type == SLICE_BEGIN:
                slices_by_category[category] += 1
                names_by_category[category].add(name)
            elif e.type == INSTANT:
                counts["instants"] += 1
                counts[f"instants_{category}"] += 1
            elif e.type == COUNTER:
                counts["counter_values"] += 1

    if clock_snapshots == 0:
        problem("no ClockSnapshot")
    # The plain "tasks" track(s), under which each spawn location's group holds its tasks.
    tasks_tracks = {
        uuid
        for uuid, d in tracks.items()
        if d.name == "tasks" and not d.HasField("thread") and not d.HasField("process")
    }
    for uuid, d in tracks.items():
        if d.HasField("parent_uuid"):
            parent = tracks.get(d.parent_uuid)
            if parent is None:
                problem(f"track {uuid} ({d.name!r}) has an undefined parent {d.parent_uuid}")
            elif d.name.startswith("task ") and (
                parent.HasField("thread") or parent.HasField("process")
            ):
                problem(f"task track {d.name!r} sits directly under a process or thread track")
            elif d.name.startswith("task ") and parent.parent_uuid not in tasks_tracks:
                problem(f"task track {d.name!r} is not in a spawn location's group under \"tasks\"")
    for uuid, events in events_by_track.items():
        if uuid not in tracks:
            problem(f"{len(events)} track events on undefined track {uuid}")
            continue
        events.sort(key=lambda ev: (-1 if ev[0] is None else ev[0], ev[1]))
        depth = 0
        for ts, index, kind, name, _ in events:
            if kind == SLICE_BEGIN:
                depth += 1
            elif kind == SLICE_END:
                if depth == 0:
                    problem(f"track {uuid}: END without BEGIN at {ts} (packet {index})")
                else:
                    depth -= 1
        if depth != 0:
            problem(f"track {uuid} ({tracks[uuid].name!r}): {depth} slices never ended")
    flow_events.sort(key=lambda ev: (-1 if ev[0] is None else ev[0], ev[1]))
    open_flows = {}  # id -> packet index of its start
    last_end = {}  # id -> time its last flow ended
    flows = 0
    for ts, index, kind, flow in flow_events:
        if kind == 0:
            flows += 1
            if flow in open_flows:
                problem(f"flow {flow} begins again (packet {index}) while its flow of packet "
                        f"{open_flows[flow]} is open")
            elif last_end.get(flow) == ts:
                problem(f"flow {flow} begins (packet {index}) at the instant its last flow ended")
            open_flows[flow] = index
        elif open_flows.pop(flow, None) is None:
            problem(f"flow {flow} ends (packet {index}) with no flow of that id open")
        else:
            last_end[flow] = ts
    for flow, index in open_flows.items():
        problem(f"flow {flow} begun at packet {index} never ends")

    # Slices on the tracks of tasks, by name.
    task_slice_names = collections.Counter(
        name
        for uuid, events in events_by_track.items()
        if uuid in tracks and tracks[uuid].name.startswith("task ")
        for _, _, kind, name, _ in events
        if kind == SLICE_BEGIN
    )
    kinds = collections.Counter()
    thread_names = []
    for d in tracks.values():
        if d.HasField("thread"):
            kinds["thread"] += 1
            thread_names.append(d.thread.thread_name)
        elif d.HasField("process"):
            kinds["process"] += 1
        elif d.HasField("counter"):
            kinds["counter"] += 1
        elif d.name.startswith("task "):
            kinds["task"] += 1
        elif d.HasField("parent_uuid") and d.parent_uuid in tasks_tracks:
            kinds["task_location"] += 1
        elif d.name.startswith("user task "):
            kinds["user_task"] += 1
        else:
            kinds["other"] += 1
    return finish(
        {
            "packets": len(trace.packet),
            "tracks": dict(kinds),
            "thread_names": sorted(thread_names),
            "slices": dict(slices_by_category),
            "slice_names": {k: sorted(n for n in v if n) for k, v in names_by_category.items()},
            "task_slice_names": dict(task_slice_names),
            "flows": flows,
            # Tracks whose children the UI orders by their first event.
            "chronological": sorted(
                d.name for d in tracks.values() if d.child_ordering == pb.TrackDescriptor.CHRONOLOGICAL
            ),
            "counts": dict(counts),
            "args": dict(arg_counts),
            "sample_functions": sorted(sample_functions),
            "sample_tids": sorted(sample_tids),
        }
    )


def finish(stats):
    if problems:
        for p in problems[:50]:
            print(p, file=sys.stderr)
        if len(problems) > 50:
            print(f"... and {len(problems) - 50} more problems", file=sys.stderr)
        return 1
    print(json.dumps(stats))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
