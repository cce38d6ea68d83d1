package io.lockstep.protocol;

import io.lockstep.conf.SyncMode;
import io.lockstep.conf.Transport;
import java.io.Serializable;

/**
 * Everything a worker needs to reach one parameter server, or one shard of a sharded one, shipped
 * from the driver to the executors. Shard {@code s} of a job uses its own pair of Aeron streams,
 * {@code 1001 + 2s} for gradients and {@code 1002 + 2s} for results, so shards can share a media
 * driver, a UDP endpoint, or both.
 *
 * @param transport IPC through the server's media driver, or UDP
 * @param aeronDirectory the server's media driver directory (IPC)
 * @param host the address the server binds and workers send to (UDP)
 * @param port the UDP port for gradients; {@code port + 1} carries results
 * @param termLengthBytes Aeron term length of the streams
 * @param chunkBytes payload bytes of one gradient chunk
 * @param jobId identifies this job's frames; frames of other jobs are rejected
 * @param workers number of workers that contribute to each step
 * @param parameterCount length of the flat gradient in floats, of this shard's range when sharded
 * @param shard this shard's index, from 0; 0 when the server is not sharded
 * @param mode how the workers synchronize: the server sums ({@code sync}, {@code local-sgd}) or
 *     adds updates as they come ({@code async}, {@code stale-sync})
 * @param staleness {@code stale-sync}: how many steps a worker may run ahead of the slowest
 * @param key the job's secret frame key: every frame carries a tag made with it
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
    int parameterCount,
    int shard,
    SyncMode mode,
    int staleness,
    FrameKey key)
    implements Serializable {

  private static final int GRADIENT_STREAM_ID = 1001;
  private static final int RESULT_STREAM_ID = 1002;

  /** The highest shard index: stream ids stay within 1001 to 3048. */
  public static final int MAX_SHARDS = 1023;

  /** The most workers: an asynchronous server answers each on its own stream id. */
  public static final int MAX_WORKERS = 65_535;

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

  /**
   * The address of an unsharded server.
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
   * @param key the job's secret frame key
   */
  public ServerAddress(
      Transport transport,
      String aeronDirectory,
      String host,
      int port,
      int termLengthBytes,
      int chunkBytes,
      long jobId,
      int workers,
      int parameterCount,
      FrameKey key) {
    this(
        transport,
        aeronDirectory,
        host,
        port,
        termLengthBytes,
        chunkBytes,
        jobId,
        workers,
        parameterCount,
        0,
        SyncMode.SYNC,
        0,
        key);
  }

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
    if (shard < 0 || shard > MAX_SHARDS) {
      throw new IllegalArgumentException("shard=" + shard + " must be in [0, " + MAX_SHARDS + "]");
    }
    if (key == null) {
      throw new IllegalArgumentException("key is null: every job needs a frame key");
    }
    if (mode == null || staleness < 0) {
      throw new IllegalArgumentException("mode=" + mode + " and staleness=" + staleness);
    }
    if (workers > MAX_WORKERS) {
      throw new IllegalArgumentException("workers=" + workers + " must be <= " + MAX_WORKERS);
    }
    if (workers <= 0 || parameterCount <= 0) {
      throw new IllegalArgumentException(
          "workers=" + workers + " and parameterCount=" + parameterCount + " must be > 0");
    }
  }

  /**
   * The streams' MTU follows the chunk size: the smallest Aeron frame that holds one chunk (its
   * payload, Lockstep's 64-byte header and Aeron's 32-byte one, rounded up to Aeron's 32-byte
   * alignment), so {@code lockstep.ps.chunk-size} sets the datagrams' size on the network (the
   * default chunk gives Aeron's largest MTU, 65504; a chunk of 8896 bytes fits a 9000-byte jumbo
   * frame network without IP fragmentation).
   *
   * @return the MTU, at most {@link #MAX_MTU} and an eighth of the term
   */
  public int mtu() {
    final int frame = chunkBytes + DATA_HEADER_LENGTH + Frame.HEADER_LENGTH;
    return (frame + DATA_HEADER_LENGTH - 1) / DATA_HEADER_LENGTH * DATA_HEADER_LENGTH;
  }

  public int gradientStreamId() {
    return GRADIENT_STREAM_ID + 2 * shard;
  }

  public int resultStreamId() {
    return RESULT_STREAM_ID + 2 * shard;
  }

  /**
   * @return whether the server adds each worker's update as it comes and answers that worker alone
   */
  public boolean asynchronous() {
    return mode == SyncMode.ASYNC || mode == SyncMode.STALE_SYNC;
  }

  /**
   * The stream on which an asynchronous server answers one worker: {@code (shard + 1) x 65536 +
   * rank}, so a worker that computes never holds back another's answers.
   *
   * @param rank the worker
   * @return the stream id
   */
  public int replyStreamId(int rank) {
    return ((shard + 1) << 16) | rank;
  }

  /**
   * This address with another way to synchronize.
   *
   * @param mode the mode
   * @param staleness {@code stale-sync}: the bound, else ignored
   * @return the address
   */
  public ServerAddress withMode(SyncMode mode, int staleness) {
    return with(host, port, parameterCount, shard, mode, staleness);
  }

  /**
   * This address with another parameter range and shard index: shard {@code shard} of a job.
   *
   * @param shard the shard's index
   * @param parameterCount the length of its range, in floats
   * @return the shard's address
   */
  public ServerAddress withShard(int shard, int parameterCount) {
    return with(host, port, parameterCount, shard, mode, staleness);
  }

  /**
   * This address on another UDP endpoint: a shard that runs in its own process.
   *
   * @param host the shard's host
   * @param port its UDP port for gradients; {@code port + 1} carries results
   * @return the address
   */
  public ServerAddress withEndpoint(String host, int port) {
    return with(host, port, parameterCount, shard, mode, staleness);
  }

  private ServerAddress with(
      String host, int port, int parameterCount, int shard, SyncMode mode, int staleness) {
    return new ServerAddress(
        transport,
        aeronDirectory,
        host,
        port,
        termLengthBytes,
        chunkBytes,
        jobId,
        workers,
        parameterCount,
        shard,
        mode,
        staleness,
        key);
  }

  public ChunkLayout layout() {
    return new ChunkLayout(parameterCount, chunkBytes / Float.BYTES);
  }

  public String gradientChannel() {
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

  public String resultPublicationChannel() {
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

  public String resultSubscriptionChannel(String workerHost) {
    return transport == Transport.IPC
        ? "aeron:ipc"
        : "aeron:udp?endpoint=" + workerHost + ":0|control=" + host + ":" + (port + 1);
  }
}
