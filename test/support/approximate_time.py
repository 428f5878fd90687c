"""A Python port of message_filters' ApproximateTime synchronisation policy (ROS 2).

Ported from ``ros2/message_filters`` (commit 361e42c78ee0, the rolling branch Nav2's layer
builds against), ``include/message_filters/sync_policies/approximate_time.hpp``, lines cited as
``hpp:N`` (the policy Nav2's semantic_segmentation_layer builds with
``ApproxSyncPolicy2/3(sensor_data_depth_)`` and ``setMaxIntervalDuration(0.1 s)``), for
tests on machines without message_filters (it has no Python wheel). What it keeps of the C++
policy, with the names used there:

- one queue per input (``deques_``) and the messages moved out of it while a candidate set is
  searched (``past_``); at most ``queue_size`` messages per input in both together, the
  oldest dropped first, the search cancelled and the input marked as having dropped messages
  (``add``, hpp:165-201, the limit hpp:185-200);
- a candidate set (``candidate_``, ``makeCandidate`` hpp:306-313) of one message per input,
  its ``pivot`` (the input whose message is the latest of the set) and the search for a set of
  smaller span (``process``, hpp:508-618): the earliest and latest heads (``checkBoundary``,
  hpp:414-425: the first earliest, the last latest), a set whose span exceeds the maximum
  interval is never emitted (hpp:528-532), nor one pivoting on an input that dropped messages
  (hpp:517-523, 533-537), the age penalty (0.1 by default, hpp:76) in the comparison of
  candidates (hpp:549-561);
- the proof that a candidate is optimal, directly (hpp:565-575) or by the "virtual" search
  over inputs whose queue ran empty (hpp:576-616; ``getVirtualTime`` hpp:444-468,
  ``getVirtualCandidateBoundary`` hpp:492-503), with inter-message lower bounds of 0 (the
  layer sets none);
- emission: the callback gets the set, its messages are consumed and the messages moved to
  ``past_`` return to their queues (``publishCandidate`` hpp:385-397, ``recoverAndDelete``
  hpp:367-383).

Left out: the warnings about out-of-order messages (``checkInterMessageBound``,
hpp:117-162), which only log.
"""

from __future__ import annotations

from collections import deque
import threading
from typing import Any, Callable

from deeplab_ros.ros.stamps import stamp_ns


class ApproximateTimeSync:
    """Calls ``callback(*messages)`` with one message per input, as ApproximateTime pairs them.

    ``add(index, message)`` feeds input ``index`` (a subscription callback); stamps are the
    messages' ``header.stamp``.
    """

    def __init__(self, inputs: int, queue_size: int, max_interval_ns: int,
                 callback: Callable[..., None], age_penalty: float = 0.1) -> None:
        assert inputs >= 2 and queue_size > 0
        self._count = inputs
        self._queue_size = queue_size
        self._max_interval = max_interval_ns
        self._callback = callback
        self._age_penalty = age_penalty
        self._deques: list[deque] = [deque() for _ in range(inputs)]
        self._past: list[list] = [[] for _ in range(inputs)]
        self._dropped = [False] * inputs
        self._candidate: list | None = None
        self._candidate_start = self._candidate_end = 0
        self._pivot: int | None = None
        self._pivot_time = 0
        self._lock = threading.Lock()

    def add(self, index: int, message: Any) -> None:
        """A message of input ``index`` arrived (``ApproximateTime::add``)."""
        emitted: list[list] = []
        with self._lock:
            queue = self._deques[index]
            queue.append(message)
            if len(queue) == 1 and self._all_non_empty():
                self._process(emitted)
            if len(queue) + len(self._past[index]) > self._queue_size:
                self._recover_all()  # cancel the ongoing search
                queue.popleft()  # drop the oldest message of this input
                self._dropped[index] = True
                if self._pivot is not None:
                    self._candidate, self._pivot = None, None
                    self._process(emitted)
        for messages in emitted:  # outside the lock, as the C++ signal runs without it
            self._callback(*messages)

    # ------------------------------------------------------------------ the policy
    def _all_non_empty(self) -> bool:
        return all(self._deques)

    def _time(self, message: Any) -> int:
        return stamp_ns(message.header)

    @staticmethod
    def _boundary(times: list[int], end: bool) -> tuple[int, int]:
        """(index, time) of the earliest of ``times`` (the first such) or, with ``end``, of
        the latest (the last such), as ``getCandidateBoundary`` scans them."""
        index, time = 0, times[0]
        for i in range(1, len(times)):
            if (times[i] < time) != end:
                index, time = i, times[i]
        return index, time

    def _make_candidate(self) -> None:
        self._candidate = [queue[0] for queue in self._deques]
        for past in self._past:
            past.clear()

    def _move_front_to_past(self, index: int) -> None:
        self._past[index].append(self._deques[index].popleft())

    def _recover(self, index: int, count: int | None = None) -> None:
        past, queue = self._past[index], self._deques[index]
        count = len(past) if count is None else count
        for _ in range(count):
            queue.appendleft(past.pop())

    def _recover_all(self) -> None:
        for index in range(self._count):
            self._recover(index)

    def _publish_candidate(self, emitted: list[list]) -> None:
        assert self._candidate is not None
        emitted.append(self._candidate)
        self._candidate, self._pivot = None, None
        for index in range(self._count):  # recoverAndDelete: the candidate's message goes
            self._recover(index)
            self._deques[index].popleft()

    def _virtual_time(self, index: int) -> int:
        queue = self._deques[index]
        if queue:
            return self._time(queue[0])
        return max(self._time(self._past[index][-1]), self._pivot_time)

    def _process(self, emitted: list[list]) -> None:
        penalty = 1.0 + self._age_penalty
        while self._all_non_empty():
            heads = [self._time(queue[0]) for queue in self._deques]
            end_index, end_time = self._boundary(heads, end=True)
            start_index, start_time = self._boundary(heads, end=False)
            for index in range(self._count):
                if index != end_index:
                    self._dropped[index] = False
            if self._pivot is None:
                if end_time - start_time > self._max_interval or self._dropped[end_index]:
                    self._deques[start_index].popleft()
                    continue
                self._make_candidate()
                self._candidate_start, self._candidate_end = start_time, end_time
                self._pivot, self._pivot_time = end_index, end_time
                self._move_front_to_past(start_index)
            else:
                if (end_time - self._candidate_end) * penalty >= \
                        start_time - self._candidate_start:
                    self._move_front_to_past(start_index)
                else:
                    self._make_candidate()
                    self._candidate_start, self._candidate_end = start_time, end_time
                    self._move_front_to_past(start_index)
            if start_index == self._pivot:
                self._publish_candidate(emitted)
            elif (end_time - self._candidate_end) * penalty >= \
                    self._pivot_time - self._candidate_start:
                self._publish_candidate(emitted)
            elif not self._all_non_empty():
                self._virtual_search(emitted, penalty)

    def _virtual_search(self, emitted: list[list], penalty: float) -> None:
        moves = [0] * self._count
        while True:
            times = [self._virtual_time(index) for index in range(self._count)]
            _, end_time = self._boundary(times, end=True)
            start_index, start_time = self._boundary(times, end=False)
            if (end_time - self._candidate_end) * penalty >= \
                    self._pivot_time - self._candidate_start:
                self._publish_candidate(emitted)
                return
            if (end_time - self._candidate_end) * penalty < \
                    start_time - self._candidate_start:
                for index, count in enumerate(moves):
                    self._recover(index, count)
                return
            assert start_index != self._pivot
            self._move_front_to_past(start_index)
            moves[start_index] += 1
