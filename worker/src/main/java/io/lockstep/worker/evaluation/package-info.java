/**
 * The test metric a job reports ({@link io.lockstep.worker.evaluation.TestMetric}): accuracy for
 * classifiers, mean average precision for detectors, the share of boxes found for grounding.
 */
package io.lockstep.worker.evaluation;
