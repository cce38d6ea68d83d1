package io.lockstep.driver;

/**
 * One line of {@code metrics.jsonl}: what one global step did, in snake_case JSON.
 *
 * @param step the global step, from 1 (the number of optimizer steps applied after it)
 * @param epoch the epoch, from 1
 * @param samples the global batch of the step
 * @param loss the mean training loss over the batch, before the step
 * @param learningRate the learning rate the step applied
 * @param gradientNorm the L2 norm of the mean gradient, before clipping
 */
public record StepMetrics(
    long step, int epoch, int samples, double loss, double learningRate, double gradientNorm) {}
