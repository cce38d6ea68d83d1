package io.lockstep.ps;

import io.lockstep.protocol.ServerShards;
import io.lockstep.protocol.ShardSpan;
import java.util.List;

/**
 * A parameter server a job trains through, wherever its shards run: in this JVM ({@link
 * ParameterServer}) or in standalone processes ({@link RemoteShards}).
 */
public interface RunningServer extends AutoCloseable {
  /**
   * The shards workers connect to.
   *
   * @return the job's shards
   */
  ServerShards shards();

  /**
   * Throws the server's failure, if it had one.
   *
   * @throws ParameterServerException naming the shard, step and missing workers
   */
  void checkHealthy();

  /**
   * Frames that were dropped: another job's, an unknown rank's, a stale step's, malformed ones.
   *
   * @return the count, over all shards
   */
  long rejectedFrames();

  /**
   * The spans of the steps every shard completed since the last call, for the run's timeline; none
   * from shard processes, whose clocks and spans stay on their hosts.
   *
   * @return the spans, per shard oldest first
   */
  default List<ShardSpan> drainSpans() {
    return List.of();
  }

  /** Stops serving the job; idempotent. */
  @Override
  void close();
}
