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

  /** Checks the values that would otherwise fail deep inside Aeron. */
  public ServerAddress {
    if (Integer.bitCount(termLengthBytes) != 1 || termLengthBytes < 64 * 1024) {
      throw new IllegalArgumentException(
          "termLengthBytes=" + termLengthBytes + " must be a power of two >= 64 KiB");
    }
    if (chunkBytes <= 0
        || chunkBytes % Float.BYTES != 0
        || chunkBytes + Frame.HEADER_LENGTH > termLengthBytes / 8) {
      throw new IllegalArgumentException(
          "chunkBytes="
              + chunkBytes
              + " must be a positive multiple of 4 and at most termLengthBytes/8 - "
              + Frame.HEADER_LENGTH);
    }
    if (workers <= 0 || parameterCount <= 0) {
      throw new IllegalArgumentException(
          "workers=" + workers + " and parameterCount=" + parameterCount + " must be > 0");
    }
  }

  ChunkLayout layout() {
    return new ChunkLayout(parameterCount, chunkBytes / Float.BYTES);
  }

  String gradientChannel() {
    return transport == Transport.IPC
        ? "aeron:ipc?term-length=" + termLengthBytes
        : "aeron:udp?endpoint=" + host + ":" + port + "|term-length=" + termLengthBytes;
  }

  String resultPublicationChannel() {
    return transport == Transport.IPC
        ? "aeron:ipc?term-length=" + termLengthBytes
        : "aeron:udp?control="
            + host
            + ":"
            + (port + 1)
            + "|control-mode=dynamic|fc=min|term-length="
            + termLengthBytes;
  }

  String resultSubscriptionChannel(String workerHost) {
    return transport == Transport.IPC
        ? "aeron:ipc"
        : "aeron:udp?endpoint=" + workerHost + ":0|control=" + host + ":" + (port + 1);
  }
}
