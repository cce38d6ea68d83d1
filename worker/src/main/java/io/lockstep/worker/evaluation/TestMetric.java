package io.lockstep.worker.evaluation;

import io.lockstep.conf.JobConfig;
import io.lockstep.conf.Keys;
import io.lockstep.models.ModelZoo;
import io.lockstep.worker.input.PhraseSamples;
import io.lockstep.worker.input.Samples;
import io.lockstep.worker.input.SceneSamples;
import java.util.List;
import org.deeplearning4j.nn.graph.ComputationGraph;

/** How a trained network is scored on the job's test split: the metric of the model's task. */
public interface TestMetric {
  /**
   * The metric's name in {@code summary.json}: {@code test_accuracy}, {@code map50} or {@code
   * mean_iou}.
   *
   * @return the name
   */
  String name();

  /**
   * Scores a network; higher is better.
   *
   * @param network the network, in inference mode
   * @return the score, in [0, 1]
   */
  double score(ComputationGraph network);

  /**
   * What the network makes of every test image, for the run's report.
   *
   * @param network the network, in inference mode
   * @return one prediction per test image, in the split's order
   */
  List<Prediction> predict(ComputationGraph network);

  /**
   * The metric of the job's model on its test split.
   *
   * @param job the job: its model and evaluation batch size
   * @param test the test split, as {@link io.lockstep.worker.input.Datasets#test} made it
   * @return accuracy for classifiers, mAP at IoU 0.5 for detectors, mean IoU for grounding
   */
  static TestMetric of(JobConfig job, Samples test) {
    return switch (ModelZoo.spec(job).task()) {
      case CLASSIFICATION -> new Evaluator(test, job.get(Keys.EVAL_BATCH_SIZE));
      case DETECTION -> new DetectionEvaluator((SceneSamples) test, job.get(Keys.EVAL_BATCH_SIZE));
      case GROUNDING -> new GroundingEvaluator((PhraseSamples) test, job.get(Keys.EVAL_BATCH_SIZE));
    };
  }
}
