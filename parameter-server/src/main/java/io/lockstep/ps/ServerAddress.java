package io.lockstep.ps;

import io.lockstep.conf.Transport;
import java.io.Serializable;

/**
 * Everything a worker needs to reach one parameter server job, shipped from the driver to the
 * executors.
 *
 * @param transport IPC through the server's media driver, or UDP
 * @param aeronDirectory the server's media driver directory (IPC)
 * @param host the address the server binds and workers send to (UDP)
 * @param port the UDP port for gradients; {@code port + 1} carries results
 * @param termLengthBytes Aeron term length of the streams
 * @param chunkBytes payload bytes of one gradient chunk
 * @param jobId identifies this job's frames; frames of other jobs are rejected
 * @param workers number of workers that contribute to each step
 * @param parameterCount length of the flat gradient in floats
 */
public record ServerAddress(
    Transport transport,
    String aeronDirectory,
    String host,
    int port,
    int termLengthBytes,
    int chunkBytes,
    long jobId,
    int workers,
    int parameterCount)
    implements Serializable {

  static final int GRADIENT_STREAM_ID = 1001;
  static final int RESULT_STREAM_ID = 1002;

  /** Aeron's largest MTU: a UDP datagram's payload, rounded down to its 32-byte frame alignment. */
  static final int MAX_MTU = 65504;

  /** Aeron's data frame header, in front of every fragment. */
  static final int DATA_HEADER_LENGTH = 32;

  /**
   * The largest chunk that travels as one unfragmented Aeron message with the largest MTU: the
   * receiver hands it over in place, with no reassembly copy.
   */
  public static final int UNFRAGMENTED_CHUNK_BYTES =
      MAX_MTU - DATA_HEADER_LENGTH - Frame.HEADER_LENGTH;

  /** Checks the values that would otherwise fail deep inside Aeron. */
  public ServerAddress {
    if (Integer.bitCount(termLengthBytes) != 1 || termLengthBytes < 64 * 1024) {
      throw new IllegalArgumentException(
          "termLengthBytes=" + termLengthBytes + " must be a power of two >= 64 KiB");
    }
    final int largestChunk =
        Math.min(MAX_MTU, termLengthBytes / 8) - DATA_HEADER_LENGTH - Frame.HEADER_LENGTH;
    if (chunkBytes <= 0 || chunkBytes % Float.BYTES != 0 || chunkBytes > largestChunk) {
      throw new IllegalArgumentException(
          "chunkBytes="
              + chunkBytes
              + " must be a positive multiple of 4 and at most "
              + largestChunk
              + " with termLengthBytes="
              + termLengthBytes
              + ", so a chunk is one unfragmented Aeron frame");
    }
    if (workers <= 0 || parameterCount <= 0) {
      throw new IllegalArgumentException(
          "workers=" + workers + " and parameterCount=" + parameterCount + " must be > 0");
    }
  }

  /**
   * @return the streams' MTU: the largest Aeron allows, within an eighth of the term
   */
  int mtu() {
    return Math.min(MAX_MTU, termLengthBytes / 8);
  }

  ChunkLayout layout() {
    return new ChunkLayout(parameterCount, chunkBytes / Float.BYTES);
  }

  String gradientChannel() {
    return transport == Transport.IPC
        ? "aeron:ipc?term-length=" + termLengthBytes + "|mtu=" + mtu()
        : "aeron:udp?endpoint="
            + host
            + ":"
            + port
            + "|term-length="
            + termLengthBytes
            + "|mtu="
            + mtu();
  }

  String resultPublicationChannel() {
    return transport == Transport.IPC
        ? "aeron:ipc?term-length=" + termLengthBytes + "|mtu=" + mtu()
        : "aeron:udp?control="
            + host
            + ":"
            + (port + 1)
            + "|control-mode=dynamic|fc=min|term-length="
            + termLengthBytes
            + "|mtu="
            + mtu();
  }

  String resultSubscriptionChannel(String workerHost) {
    return transport == Transport.IPC
        ? "aeron:ipc"
        : "aeron:udp?endpoint=" + workerHost + ":0|control=" + host + ":" + (port + 1);
  }
}
