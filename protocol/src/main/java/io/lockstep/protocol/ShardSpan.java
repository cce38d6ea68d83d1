package io.lockstep.protocol;

/**
 * What one shard of a synchronous server did for one step, on the wall clock: from the step's first
 * frame, through the moment every worker's first chunk was in (the wait for the slowest worker), to
 * the last chunk of the sum sent back.
 *
 * @param shard the shard
 * @param step the global step
 * @param startMicros the step's first frame arrived, microseconds since the epoch
 * @param gatheredMicros every worker's first gradient chunk was in
 * @param endMicros the last chunk of the sum was sent
 */
public record ShardSpan(
    int shard, long step, long startMicros, long gatheredMicros, long endMicros) {}
