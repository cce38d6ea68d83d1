package io.lockstep.protocol;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.List;

/**
 * A parameter server cut into shards: shard {@code s} owns the contiguous range {@code [first(s),
 * first(s) + shard(s).parameterCount())} of the flat parameter vector, a whole number of chunks,
 * and sums it on its own streams. Workers send to all shards at once; one shard is the unsharded
 * server.
 *
 * @param shards the shards' addresses, in range order, with indexes 0, 1, ...
 */
public record ServerShards(List<ServerAddress> shards) implements Serializable {
  /** Checks that the shards belong to one job and are numbered in order. */
  public ServerShards {
    shards = List.copyOf(shards);
    if (shards.isEmpty()) {
      throw new IllegalArgumentException("a parameter server needs at least one shard");
    }
    final ServerAddress first = shards.get(0);
    for (int s = 0; s < shards.size(); s++) {
      final ServerAddress shard = shards.get(s);
      if (shard.shard() != s) {
        throw new IllegalArgumentException("shard " + s + " has index " + shard.shard());
      }
      if (shard.jobId() != first.jobId()
          || shard.workers() != first.workers()
          || shard.transport() != first.transport()
          || shard.chunkBytes() != first.chunkBytes()) {
        throw new IllegalArgumentException(
            "shard " + s + " belongs to another job, worker count, transport or chunk size");
      }
    }
  }

  /**
   * Cuts a server's range into {@code count} shards of whole chunks, as even as they come.
   *
   * @param whole the unsharded server's address
   * @param count the number of shards, at most the number of chunks
   * @return the shards, all on {@code whole}'s media driver and endpoint
   * @throws IllegalArgumentException when there are fewer chunks than shards
   */
  public static ServerShards split(ServerAddress whole, int count) {
    final int chunks = whole.layout().chunkCount();
    if (count <= 0 || count > chunks || count > ServerAddress.MAX_SHARDS + 1) {
      throw new IllegalArgumentException(
          count
              + " shards for a gradient of "
              + chunks
              + " chunks; use between 1 and "
              + Math.min(chunks, ServerAddress.MAX_SHARDS + 1));
    }
    final int chunkFloats = whole.chunkBytes() / Float.BYTES;
    final List<ServerAddress> shards = new ArrayList<>(count);
    for (int s = 0; s < count; s++) {
      final long from = (long) chunks * s / count * chunkFloats;
      final long to =
          Math.min(whole.parameterCount(), (long) chunks * (s + 1) / count * chunkFloats);
      shards.add(whole.withShard(s, (int) (to - from)));
    }
    return new ServerShards(shards);
  }

  /**
   * @return a single, unsharded server
   * @param address its address
   */
  public static ServerShards of(ServerAddress address) {
    return new ServerShards(List.of(address));
  }

  /**
   * @return the number of shards
   */
  public int count() {
    return shards.size();
  }

  /**
   * @param shard a shard index
   * @return that shard's address
   */
  public ServerAddress shard(int shard) {
    return shards.get(shard);
  }

  /**
   * @param shard a shard index
   * @return the index, in the flat vector, of the shard's first parameter
   */
  public int first(int shard) {
    int first = 0;
    for (int s = 0; s < shard; s++) {
      first += shards.get(s).parameterCount();
    }
    return first;
  }

  /**
   * @return the length of the whole flat vector, in floats
   */
  public int parameterCount() {
    return first(shards.size());
  }

  /**
   * @return the number of workers every shard expects
   */
  public int workers() {
    return shards.get(0).workers();
  }
}
