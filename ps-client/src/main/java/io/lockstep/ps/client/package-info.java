/**
 * A worker's side of the parameter server: {@link io.lockstep.ps.client.GradientExchange} sends a
 * step's gradient chunks to every shard and takes back their sums, with the step's overlap,
 * SyncBatchNorm's statistics rounds, compression ({@link io.lockstep.ps.client.GradientEncoder})
 * and aborts. It speaks {@code io.lockstep.protocol} and knows nothing of the server's code.
 */
package io.lockstep.ps.client;
