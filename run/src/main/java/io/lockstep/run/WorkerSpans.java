package io.lockstep.run;

import java.util.ArrayList;
import java.util.List;

/**
 * Which steps of a run ran on how many workers: consecutive stages on the same number of workers
 * make one span. A run that never lost a worker has one span.
 */
public final class WorkerSpans {
  /**
   * Global steps {@code [fromStep, toStep)} ran on {@code workers} workers; summary.json names the
   * fields in snake_case.
   *
   * @param fromStep the span's first global step, from 0
   * @param toStep one past its last
   * @param workers the workers that computed them
   */
  public record Span(long fromStep, long toStep, int workers) {}

  private final List<Span> spans = new ArrayList<>();

  /**
   * Counts a stage.
   *
   * @param firstStep its first global step, from 0
   * @param steps its steps
   * @param workers its workers
   */
  public void add(long firstStep, int steps, int workers) {
    final Span last = spans.isEmpty() ? null : spans.get(spans.size() - 1);
    if (last != null && last.workers() == workers && last.toStep() == firstStep) {
      spans.set(spans.size() - 1, new Span(last.fromStep(), firstStep + steps, workers));
    } else {
      spans.add(new Span(firstStep, firstStep + steps, workers));
    }
  }

  /**
   * @return the spans so far, in step order
   */
  public List<Span> list() {
    return List.copyOf(spans);
  }
}
