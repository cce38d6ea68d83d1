package io.lockstep.ps;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.lockstep.protocol.ChunkCodec;
import io.lockstep.protocol.Frame;
import io.lockstep.protocol.FrameKey;
import io.lockstep.protocol.FrameTag;
import java.lang.management.ManagementFactory;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Fuzzes the decoders a server and a worker run on every inbound frame, before any byte is summed:
 * the header and peer checks ({@link Frame#peerProblem}) and the chunk payload check ({@link
 * ChunkCodec#frameProblem}), then, for what they accept, the decoders themselves ({@link
 * ChunkCodec#add}, {@link ChunkCodec#decode}) into arrays exactly as long as the chunk, so a read
 * or write past it throws. Inputs are valid frames of every encoding, mutated (bit flips, header
 * fields set to extremes, truncation, extension, random bytes), seeded so a failure replays.
 */
class FrameFuzzTest {
  private static final int INPUTS = 1_000_000;
  private static final long JOB = 0x5EED_0F_10C5_7E9L;
  private static final int WORKERS = 4;
  private static final int MAX_COUNT = 512;
  private static final int[] HEADER_INTS = {
    Frame.RANK_OFFSET,
    Frame.JOB_ID_OFFSET,
    Frame.STEP_OFFSET,
    Frame.CHUNK_INDEX_OFFSET,
    Frame.CHUNK_COUNT_OFFSET,
    Frame.SAMPLES_OFFSET,
    Frame.PAYLOAD_LENGTH_OFFSET,
    Frame.PARAMETER_COUNT_OFFSET,
    Frame.ENCODING_OFFSET
  };
  private static final int[] EXTREMES = {
    0, -1, 1, Integer.MIN_VALUE, Integer.MAX_VALUE, WORKERS, MAX_COUNT, 1 << 16, 1 << 24
  };

  @Test
  @Timeout(value = 3, unit = TimeUnit.MINUTES)
  void decodersSurviveAMillionMalformedFrames() {
    final SplittableRandom random = new SplittableRandom(20261123);
    final int capacity = Frame.HEADER_LENGTH + ChunkCodec.maxLength(MAX_COUNT) + 64;
    final UnsafeBuffer frame = new UnsafeBuffer(new byte[capacity]);
    final float[] values = new float[MAX_COUNT];
    final float[] sum = new float[MAX_COUNT];
    final byte[] decodedBytes = new byte[MAX_COUNT * Float.BYTES];
    final UnsafeBuffer decoded = new UnsafeBuffer(decodedBytes);
    final long[] outcomes = new long[3];
    final com.sun.management.ThreadMXBean threads =
        (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
    final long allocatedBefore = threads.getCurrentThreadAllocatedBytes();
    final long start = System.nanoTime();
    for (int input = 0; input < INPUTS; input++) {
      final int count = 1 + random.nextInt(MAX_COUNT);
      final int length = mutate(random, frame, validFrame(random, frame, values, count), capacity);
      if (Frame.peerProblem(frame, 0, length, JOB, WORKERS) != null) {
        outcomes[0]++;
        continue;
      }
      if (ChunkCodec.frameProblem(frame, 0, count) != null) {
        outcomes[1]++;
        continue;
      }
      // accepted: decode into exactly count floats, at the arrays' ends, bounds-checked
      final byte encoding = Frame.encoding(frame, 0);
      final int payloadLength = Frame.payloadLength(frame, 0);
      assertEquals(length - Frame.HEADER_LENGTH, payloadLength, "input " + input);
      ChunkCodec.add(
          encoding, frame, Frame.HEADER_LENGTH, payloadLength, sum, MAX_COUNT - count, count);
      decoded.wrap(decodedBytes, (MAX_COUNT - count) * Float.BYTES, count * Float.BYTES);
      ChunkCodec.decode(encoding, frame, Frame.HEADER_LENGTH, payloadLength, decoded, 0, count);
      outcomes[2]++;
    }
    final double seconds = (System.nanoTime() - start) / 1e9;
    final double allocatedPerInput =
        (threads.getCurrentThreadAllocatedBytes() - allocatedBefore) / (double) INPUTS;
    System.out.printf(
        "fuzz: %d frames in %.1f s: %d refused by the header or peer check, %d by the payload"
            + " check, %d decoded; %.0f bytes allocated per frame%n",
        INPUTS, seconds, outcomes[0], outcomes[1], outcomes[2], allocatedPerInput);
    assertEquals(INPUTS, outcomes[0] + outcomes[1] + outcomes[2]);
    assertTrue(outcomes[0] > INPUTS / 10, "header mutations reach the header check");
    assertTrue(outcomes[1] > INPUTS / 100, "payload mutations reach the payload check");
    assertTrue(outcomes[2] > INPUTS / 100, "valid frames reach the decoders");
    // the refusals' messages only: nothing sized by what a frame claims
    assertTrue(allocatedPerInput < 2048, allocatedPerInput + " bytes allocated per frame");
  }

  /**
   * Signs valid frames with a job's key, mutates them the same ways, and checks that the tag
   * accepts exactly the frames that came out unchanged: no mutation of header, tag or payload
   * passes, and the check never throws.
   */
  @Test
  @Timeout(value = 3, unit = TimeUnit.MINUTES)
  void tagRefusesEveryChangedFrameOfAMillion() {
    final SplittableRandom random = new SplittableRandom(20261124);
    final int capacity = Frame.HEADER_LENGTH + ChunkCodec.maxLength(MAX_COUNT) + 64;
    final UnsafeBuffer frame = new UnsafeBuffer(new byte[capacity]);
    final byte[] original = new byte[capacity];
    final float[] values = new float[MAX_COUNT];
    final FrameKey key = FrameKey.random();
    final FrameTag signer = new FrameTag(key);
    final FrameTag verifier = new FrameTag(key);
    final FrameTag stranger = new FrameTag(FrameKey.random());
    long unchanged = 0;
    long refused = 0;
    final long start = System.nanoTime();
    for (int input = 0; input < INPUTS; input++) {
      final int count = 1 + random.nextInt(MAX_COUNT);
      final int signedLength = validFrame(random, frame, values, count);
      signer.sign(frame, 0, signedLength);
      frame.getBytes(0, original, 0, signedLength);
      final int length = mutate(random, frame, signedLength, capacity);
      final boolean same =
          length == signedLength
              && java.util.Arrays.equals(original, 0, length, frame.byteArray(), 0, length);
      assertEquals(same, verifier.verify(frame, 0, length), "input " + input);
      if (same) {
        assertTrue(!stranger.verify(frame, 0, length), "another key accepted input " + input);
        unchanged++;
      } else {
        refused++;
      }
    }
    System.out.printf(
        "fuzz: %d signed frames mutated in %.1f s: %d changed, all refused by the tag; %d came"
            + " out unchanged and passed (and failed another key)%n",
        INPUTS, (System.nanoTime() - start) / 1e9, refused, unchanged);
    assertTrue(refused > INPUTS / 2, "most mutations change the frame");
  }

  /** Writes a valid frame of {@code count} floats in a random encoding; returns its length. */
  private static int validFrame(
      SplittableRandom random, UnsafeBuffer frame, float[] values, int count) {
    final boolean sparse = random.nextInt(4) == 0;
    for (int i = 0; i < count; i++) {
      values[i] = sparse && random.nextInt(8) != 0 ? 0f : (float) random.nextGaussian();
    }
    byte encoding = (byte) random.nextInt(3);
    int payload;
    if (sparse
        && (payload = ChunkCodec.encodeSparse(values, count, frame, Frame.HEADER_LENGTH)) > 0) {
      encoding = ChunkCodec.SPARSE;
    } else if (encoding == ChunkCodec.F16) {
      payload = ChunkCodec.encodeF16(values, count, frame, Frame.HEADER_LENGTH);
    } else if (encoding == ChunkCodec.BF16) {
      payload = ChunkCodec.encodeBf16(values, count, frame, Frame.HEADER_LENGTH);
    } else {
      encoding = ChunkCodec.F32;
      payload = count * Float.BYTES;
      for (int i = 0; i < count; i++) {
        frame.putFloat(Frame.HEADER_LENGTH + Float.BYTES * i, values[i]);
      }
    }
    Frame.encode(
        frame,
        Frame.TYPE_GRADIENT,
        random.nextInt(WORKERS),
        JOB,
        random.nextInt(1000),
        0,
        1,
        count,
        payload,
        count);
    Frame.encodingAndFlags(frame, encoding, (byte) 0);
    return Frame.HEADER_LENGTH + payload;
  }

  /** Damages a frame one of several ways (or not at all); returns its new length. */
  private static int mutate(SplittableRandom random, UnsafeBuffer frame, int length, int capacity) {
    switch (random.nextInt(7)) {
      case 0 -> {
        for (int flips = 1 + random.nextInt(4); flips > 0; flips--) {
          final int at = random.nextInt(length);
          frame.putByte(at, (byte) (frame.getByte(at) ^ (1 << random.nextInt(8))));
        }
        return length;
      }
      case 1 -> {
        final int field = HEADER_INTS[random.nextInt(HEADER_INTS.length)];
        final int value =
            random.nextBoolean() ? EXTREMES[random.nextInt(EXTREMES.length)] : random.nextInt();
        if (field == Frame.ENCODING_OFFSET) {
          frame.putByte(field, (byte) value);
        } else {
          frame.putInt(field, value, java.nio.ByteOrder.LITTLE_ENDIAN);
        }
        return length;
      }
      case 2 -> {
        return random.nextInt(length);
      }
      case 3 -> {
        final int longer = Math.min(capacity, length + 1 + random.nextInt(64));
        for (int at = length; at < longer; at++) {
          frame.putByte(at, (byte) random.nextInt(256));
        }
        return longer;
      }
      case 4 -> {
        final int randomLength = random.nextInt(capacity + 1);
        for (int at = 0; at < randomLength; at++) {
          frame.putByte(at, (byte) random.nextInt(256));
        }
        return randomLength;
      }
      case 5 -> {
        // the payload only: sparse offsets, half-precision scales, float bits
        if (length > Frame.HEADER_LENGTH) {
          for (int flips = 1 + random.nextInt(4); flips > 0; flips--) {
            final int at = Frame.HEADER_LENGTH + random.nextInt(length - Frame.HEADER_LENGTH);
            frame.putByte(at, (byte) random.nextInt(256));
          }
        }
        return length;
      }
      default -> {
        return length;
      }
    }
  }
}
