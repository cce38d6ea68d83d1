package io.lockstep.worker;

import java.io.Serializable;

/**
 * What one worker reports after an epoch.
 *
 * @param rank the worker
 * @param steps batches trained
 * @param samples samples this worker computed gradients for
 * @param lossSum the sum over its samples of the training loss
 * @param dataNs time spent assembling batches
 * @param computeNs time in forward and backward passes
 * @param syncNs time exchanging gradients with the parameter server
 * @param applyNs time applying the optimizer step
 * @param parametersCrc CRC-32 of the replica's parameters at the end, equal on every rank
 * @param state the replica at the end of the epoch (rank 0 only, null elsewhere)
 */
public record EpochReport(
    int rank,
    int steps,
    long samples,
    double lossSum,
    long dataNs,
    long computeNs,
    long syncNs,
    long applyNs,
    long parametersCrc,
    ModelState state)
    implements Serializable {}
