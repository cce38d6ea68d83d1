/**
 * The parameter server: a summation service for synchronous data-parallel training, on Aeron, with
 * opt-in asynchronous modes and compressed encodings.
 *
 * <h2>Design</h2>
 *
 * Every worker sends, for each step, the <em>sum</em> over its samples of the per-sample gradients
 * (what Deeplearning4j's backward pass produces) together with its sample count. The server adds
 * the N contributions and sends every worker the same sum and the step's total sample count. Each
 * worker then hands that sum to its own copy of the Deeplearning4j updater with the total count as
 * the mini-batch size, exactly as {@code fit()} would with the whole global batch on one machine.
 *
 * <p>Why the server returns the gradient sum rather than updated parameters: the updater then runs
 * unchanged inside every worker, so every optimizer, regularizer and gradient normalization that
 * Deeplearning4j offers is exact without re-implementing it here, and the server stays independent
 * of the model (it sees float vectors only). Replicas stay identical because they start from the
 * same parameters and apply bit-identical inputs with identical code. Sending sums makes the
 * combination sample-weighted by construction: a worker with fewer samples (a global batch that N
 * does not divide, a short last batch, even an empty slice) contributes proportionally.
 *
 * <p>Determinism: the server adds the contributions to a chunk in rank order, never in arrival
 * order, so two runs are bit-identical. Each chunk is summed and sent back as soon as all workers
 * delivered it, which overlaps summation with transfer.
 *
 * <p>Overlap with the backward pass: a step's chunks travel newest first (the last chunk first),
 * the order in which a backward pass finishes the gradient, since it runs from the last layer to
 * the first and the parameters lie in layer order. A worker opens the step with {@link
 * io.lockstep.ps.client.GradientExchange#begin}, calls {@link
 * io.lockstep.ps.client.GradientExchange#ready} after each layer's backward pass with the first
 * float that is now final (it sends every chunk that lies wholly above it and takes in the sums
 * that have come back), and ends with {@link io.lockstep.ps.client.GradientExchange#finish}. So the
 * server sums, and answers, the last layers while the worker still computes the first ones, without
 * a thread of its own: the training thread sends between layers, and a term buffer holds what the
 * server has not read yet.
 *
 * <p>Copies: every worker's chunks arrive in order on its own Aeron image. The server leaves the
 * frame at the head of each image unconsumed, in the term, until every rank's frame of that chunk
 * is there; then it adds them through two chunk-sized heap arrays (cache-resident, vectorized by
 * the JIT) and writes the sum straight into the result term with {@code tryClaim}, and only then
 * consumes the heads. The server thus reads each contribution once and writes each sum once, holds
 * no per-worker copy of the gradient (its memory is two chunks per shard, whatever the model), and
 * a worker that runs ahead is held back by Aeron's flow control rather than buffered. Chunks must
 * therefore be single, unfragmented Aeron frames: at most {@code min(65504, term/8) - 96} bytes. A
 * short term (1 MiB by default, so half a term in flight per stream) keeps the chunks in flight in
 * the CPU cache between the worker's write, the server's read and the workers' read of the sum.
 *
 * <h2>Shards</h2>
 *
 * {@link io.lockstep.protocol.ServerShards} cuts the flat vector into S contiguous ranges of whole
 * chunks; shard s sums its range on its own pair of streams (ids 1001 + 2s and 1002 + 2s). Shards
 * run on threads of the driver's JVM ({@link io.lockstep.ps.ParameterServer}, one media driver) or
 * as standalone processes ({@link io.lockstep.ps.ShardServer}, configured per job by the driver's
 * {@link io.lockstep.ps.RemoteShards} over a control stream). Workers send chunks to the shards in
 * turn and poll every shard's results, so all shards sum at once. Each shard adds its range in rank
 * order, so a sharded server gives the same floats, bit for bit, as one server.
 *
 * <h2>Encodings</h2>
 *
 * A chunk's payload is float32 unless the job opts into compression ({@link
 * io.lockstep.protocol.ChunkCodec}: half precision with a power-of-two scale per chunk, bfloat16,
 * or sparse offset/value pairs). The worker's {@link io.lockstep.ps.client.GradientEncoder}
 * encodes, keeping top-k's and threshold's left-out values as a residual (error feedback); the
 * server checks every payload before it sums, decodes while it adds in rank order, and answers in
 * kind.
 *
 * <h2>Asynchronous modes</h2>
 *
 * With {@code lockstep.ps.mode=async} or {@code stale-sync} a shard runs an {@link
 * io.lockstep.ps.AsyncAgent} instead: it adds each worker's update on arrival to a running sum of
 * the stage's updates and answers that worker alone on its own stream ({@code (shard + 1) x 65536 +
 * rank}), at once or within the staleness bound; a stage's last step is answered when every worker
 * has sent it, so replicas end each stage equal. {@code local-sgd} uses the summing agent, which
 * then lets a later step begin at any time, since the workers average at some steps only.
 *
 * <h2>Transport</h2>
 *
 * Gradients travel as chunks of at most {@code lockstep.ps.chunk-size} bytes, framed by {@link
 * io.lockstep.protocol.Frame}. An embedded media driver runs in the server's process; with {@link
 * io.lockstep.conf.Transport#IPC} every worker on the host maps the same driver directory, with
 * {@link io.lockstep.conf.Transport#UDP} workers send unicast to the server and receive results
 * through a multi-destination-cast publication with minimum flow control, so the slowest worker
 * sets the pace and none loses data.
 *
 * <h2>Time</h2>
 *
 * Every wait has a deadline. A step's deadline starts with its first frame: when it passes, the
 * server fails the step naming the ranks whose gradients are incomplete and tells the workers.
 * Workers wait for results under the same bound.
 */
package io.lockstep.ps;
