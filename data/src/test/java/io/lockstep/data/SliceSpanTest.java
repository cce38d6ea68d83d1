package io.lockstep.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Arrays;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

class SliceSpanTest {
  @Test
  void shouldGiveTheFirstWorkerTheLostWorkersSlicesAndEveryOtherOne() {
    assertEquals(new SliceSpan(0, 1), SliceSpan.of(0, 3, 3));
    assertEquals(new SliceSpan(2, 1), SliceSpan.of(2, 3, 3));
    assertEquals(new SliceSpan(0, 2), SliceSpan.of(0, 2, 3));
    assertEquals(new SliceSpan(2, 1), SliceSpan.of(1, 2, 3));
    assertEquals(new SliceSpan(0, 3), SliceSpan.of(0, 1, 3));
    assertEquals(new SliceSpan(0, 5), SliceSpan.of(0, 4, 8));
    assertEquals(new SliceSpan(7, 1), SliceSpan.of(3, 4, 8));
  }

  @Test
  void shouldCoverEverySliceOnceInOrder() {
    for (int slices = 1; slices <= 6; slices++) {
      for (int workers = 1; workers <= slices; workers++) {
        int next = 0;
        for (int rank = 0; rank < workers; rank++) {
          final SliceSpan span = SliceSpan.of(rank, workers, slices);
          assertEquals(next, span.first());
          next = span.end();
        }
        assertEquals(slices, next);
      }
    }
  }

  @Test
  void shouldRefuseMoreWorkersThanSlicesOrARankOutside() {
    assertThrows(IllegalArgumentException.class, () -> SliceSpan.of(0, 4, 3));
    assertThrows(IllegalArgumentException.class, () -> SliceSpan.of(2, 2, 3));
    assertThrows(IllegalArgumentException.class, () -> SliceSpan.of(0, 0, 3));
  }

  /** A worker's samples are its slices' samples, concatenated in slice order, small batch too. */
  @Test
  void shouldTrainASpanOnItsSlicesSamplesInOrder() {
    final EpochPlan plan = EpochPlan.of(5, 1, 200, 64, 3);
    assertEquals(3, plan.slices());
    for (int step = 0; step < plan.steps(); step++) {
      final int s = step;
      for (int workers = 1; workers <= 3; workers++) {
        for (int rank = 0; rank < workers; rank++) {
          final SliceSpan span = SliceSpan.of(rank, workers, 3);
          final int[] expected =
              IntStream.range(span.first(), span.end())
                  .flatMap(slice -> Arrays.stream(plan.slice(s, slice)))
                  .toArray();
          assertArrayEquals(expected, plan.slices(step, span), "step " + step + " rank " + rank);
        }
      }
    }
    assertEquals(8, plan.batchSamples(3), "the last batch is smaller");
  }
}
