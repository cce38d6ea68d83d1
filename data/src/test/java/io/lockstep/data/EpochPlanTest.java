package io.lockstep.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

class EpochPlanTest {
  private static final int SAMPLES = 1000;
  private static final int BATCH = 128;
  private static final int WORKERS = 3;

  private static int[] epochOrder(EpochPlan plan) {
    return IntStream.range(0, plan.steps()).flatMap(s -> Arrays.stream(plan.batch(s))).toArray();
  }

  @Test
  void shouldCountStepsRoundingUp() {
    assertEquals(8, EpochPlan.of(1, 0, SAMPLES, BATCH, WORKERS).steps());
    assertEquals(1, EpochPlan.of(1, 0, BATCH, BATCH, WORKERS).steps());
  }

  @Test
  void shouldCoverEveryIndexExactlyOncePerEpochAcrossSlices() {
    final EpochPlan plan = EpochPlan.of(7, 0, SAMPLES, BATCH, WORKERS);
    final int[] seen = new int[SAMPLES];

    for (int step = 0; step < plan.steps(); step++) {
      for (int rank = 0; rank < WORKERS; rank++) {
        for (int index : plan.slice(step, rank)) {
          seen[index]++;
        }
      }
    }

    for (int i = 0; i < SAMPLES; i++) {
      assertEquals(1, seen[i], "sample " + i);
    }
  }

  @Test
  void shouldCutEachBatchIntoNearEqualSlicesThatConcatenateToTheBatch() {
    final EpochPlan plan = EpochPlan.of(7, 2, SAMPLES, BATCH, WORKERS);

    for (int step = 0; step < plan.steps(); step++) {
      final int[][] slices = new int[WORKERS][];
      for (int rank = 0; rank < WORKERS; rank++) {
        slices[rank] = plan.slice(step, rank);
      }
      final int smallest = Arrays.stream(slices).mapToInt(s -> s.length).min().orElseThrow();
      final int largest = Arrays.stream(slices).mapToInt(s -> s.length).max().orElseThrow();
      assertTrue(largest - smallest <= 1, "step " + step + ": " + smallest + ".." + largest);
      for (int rank = 1; rank < WORKERS; rank++) {
        assertTrue(
            slices[rank - 1].length >= slices[rank].length, "lower ranks take the extra samples");
      }

      final int[] joined = Arrays.stream(slices).flatMapToInt(Arrays::stream).toArray();
      assertArrayEquals(plan.batch(step), joined, "step " + step);
      assertEquals(plan.batchSamples(step), joined.length);
    }
  }

  @Test
  void shouldMakeLastBatchTheRemainder() {
    final EpochPlan plan = EpochPlan.of(7, 0, SAMPLES, BATCH, WORKERS);

    assertEquals(BATCH, plan.batchSamples(6));
    assertEquals(SAMPLES - 7 * BATCH, plan.batchSamples(7));
    assertEquals(SAMPLES - 7 * BATCH, plan.batch(7).length);
    assertEquals(35, plan.slice(7, 0).length);
    assertEquals(35, plan.slice(7, 1).length);
    assertEquals(34, plan.slice(7, 2).length);
  }

  @Test
  void shouldGiveSameOrderForSameSeedAndEpoch() {
    final int[] first = epochOrder(EpochPlan.of(42, 3, SAMPLES, BATCH, WORKERS));
    final int[] second = epochOrder(EpochPlan.of(42, 3, SAMPLES, BATCH, WORKERS));

    assertArrayEquals(first, second);
  }

  @Test
  void shouldKeepOrderIndependentOfBatchAndWorkers() {
    final int[] a = epochOrder(EpochPlan.of(42, 3, SAMPLES, BATCH, WORKERS));
    final int[] b = epochOrder(EpochPlan.of(42, 3, SAMPLES, 64, 5));

    assertArrayEquals(a, b);
  }

  @Test
  void shouldShuffleDifferentlyForAnotherEpoch() {
    final int[] epoch0 = epochOrder(EpochPlan.of(42, 0, SAMPLES, BATCH, WORKERS));
    final int[] epoch1 = epochOrder(EpochPlan.of(42, 1, SAMPLES, BATCH, WORKERS));

    assertFalse(Arrays.equals(epoch0, epoch1));
    assertArrayEquals(sorted(epoch0), sorted(epoch1));
  }

  @Test
  void shouldShuffleDifferentlyForAnotherSeed() {
    final int[] seed1 = epochOrder(EpochPlan.of(1, 0, SAMPLES, BATCH, WORKERS));
    final int[] seed2 = epochOrder(EpochPlan.of(2, 0, SAMPLES, BATCH, WORKERS));

    assertFalse(Arrays.equals(seed1, seed2));
  }

  @Test
  void shouldActuallyShuffle() {
    final int[] order = epochOrder(EpochPlan.of(0, 0, SAMPLES, BATCH, WORKERS));

    assertFalse(Arrays.equals(IntStream.range(0, SAMPLES).toArray(), order));
    assertArrayEquals(IntStream.range(0, SAMPLES).toArray(), sorted(order));
  }

  @Test
  void shouldGiveEmptySlicesToHighestRanksWhenBatchIsSmallerThanWorkers() {
    final EpochPlan plan = EpochPlan.of(3, 0, 5, 4, 3);

    assertEquals(2, plan.steps());
    assertEquals(1, plan.batchSamples(1));
    assertArrayEquals(plan.batch(1), plan.slice(1, 0));
    assertEquals(0, plan.slice(1, 1).length);
    assertEquals(0, plan.slice(1, 2).length);
    assertEquals(2, plan.slice(0, 0).length);
    assertEquals(1, plan.slice(0, 1).length);
    assertEquals(1, plan.slice(0, 2).length);
  }

  @Test
  void shouldRejectNonPositiveSizes() {
    assertThrows(IllegalArgumentException.class, () -> EpochPlan.of(0, 0, 0, BATCH, WORKERS));
    assertThrows(IllegalArgumentException.class, () -> EpochPlan.of(0, 0, SAMPLES, 0, WORKERS));
    assertThrows(IllegalArgumentException.class, () -> EpochPlan.of(0, 0, SAMPLES, BATCH, 0));
  }

  private static int[] sorted(int[] a) {
    final int[] copy = a.clone();
    Arrays.sort(copy);
    return copy;
  }

  @Test
  void shouldCutAnyCountIntoPartsAsTheBatchIsCutIntoSlices() {
    for (int samples = 0; samples <= 50; samples++) {
      for (int parts = 1; parts <= 7; parts++) {
        int next = 0;
        for (int index = 0; index < parts; index++) {
          assertEquals(next, EpochPlan.partStart(samples, parts, index));
          final int size = EpochPlan.partSize(samples, parts, index);
          assertTrue(size == samples / parts || size == samples / parts + 1);
          next += size;
        }
        assertEquals(samples, next);
      }
    }
    final EpochPlan plan = EpochPlan.of(3, 0, 100, 22, 4);
    for (int rank = 0; rank < 4; rank++) {
      assertEquals(EpochPlan.partSize(22, 4, rank), plan.slice(0, rank).length);
    }
  }
}
