/**
 * The parameter server: a summation service for synchronous data-parallel training, on Aeron.
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
 * <p>Determinism: the server keeps each worker's contribution and adds them in rank order once a
 * chunk is complete, never in arrival order, so two runs are bit-identical. Each chunk is summed
 * and sent back as soon as all workers delivered it, which overlaps summation with transfer.
 *
 * <h2>Transport</h2>
 *
 * Gradients travel as chunks of at most {@code lockstep.ps.chunk-size} bytes (Aeron's largest
 * message is a term length / 8), framed by {@link io.lockstep.ps.Frame}. An embedded media driver
 * runs in the server's process; with {@link io.lockstep.conf.Transport#IPC} every worker on the
 * host maps the same driver directory, with {@link io.lockstep.conf.Transport#UDP} workers send
 * unicast to the server and receive results through a multi-destination-cast publication with
 * minimum flow control, so the slowest worker sets the pace and none loses data.
 *
 * <h2>Time</h2>
 *
 * Every wait has a deadline. A step's deadline starts with its first frame: when it passes, the
 * server fails the step naming the ranks whose gradients are incomplete and tells the workers.
 * Workers wait for results under the same bound.
 */
package io.lockstep.ps;
