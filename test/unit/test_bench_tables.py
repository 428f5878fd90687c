"""The benchmark's shared timing loop and text tables."""

from deeplab_ros.tools.bench_tables import alternating_medians, text_table


def test_alternating_medians_rotates_the_order_and_times_every_call() -> None:
    calls: list[str] = []
    synchronized: list[int] = []
    medians = alternating_medians([lambda: calls.append('a'), lambda: calls.append('b'),
                                   lambda: calls.append('c')],
                                  iterations=3, warmup=1,
                                  synchronize=lambda: synchronized.append(len(calls)))
    assert calls == ['a', 'b', 'c',   # warm-up, in the order given
                     'a', 'b', 'c', 'b', 'c', 'a', 'c', 'a', 'b']
    assert len(synchronized) == 1 + 9  # after the warm-up, then after every timed call
    assert len(medians) == 3 and all(median >= 0.0 for median in medians)


def test_text_table_aligns_titles_with_their_columns() -> None:
    table = text_table([('frame', '<8'), ('ms', '>7.2f')], [['vga', 1.5], ['1080p', 12.25]])
    assert table.splitlines() == ['frame         ms',
                                  'vga         1.50',
                                  '1080p      12.25']
