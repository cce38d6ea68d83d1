package io.lockstep.worker;

import io.lockstep.conf.JobConfig;
import io.lockstep.ps.ServerAddress;
import java.io.Serializable;

/**
 * One worker's share of one epoch: plain values shipped from the driver to an executor.
 *
 * @param job the job
 * @param state the replica every worker starts the epoch from
 * @param server the parameter server to synchronize through
 * @param epoch the epoch, from 0
 * @param firstStep the global step number of the epoch's first batch
 * @param steps how many batches of the epoch to train
 */
public record EpochTask(
    JobConfig job, ModelState state, ServerAddress server, int epoch, long firstStep, int steps)
    implements Serializable {}
