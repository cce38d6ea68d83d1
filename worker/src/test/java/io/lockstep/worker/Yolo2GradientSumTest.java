package io.lockstep.worker;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.inputs.InputType;
import org.deeplearning4j.nn.conf.layers.ConvolutionLayer;
import org.deeplearning4j.nn.conf.layers.objdetect.Yolo2OutputLayer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.activations.Activation;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Sgd;

/**
 * Deeplearning4j's YOLOv2 output layer, which the shapes-detection job is to train through the same
 * exchange as every classifier: its gradient must be the sum over the batch (the replica sends sums
 * and the updater divides by the global batch) and its score the mean.
 */
class Yolo2GradientSumTest {
  @Test
  void theGradientIsASumOverTheBatchAndTheScoreAMean() {
    final ComputationGraphConfiguration conf =
        new NeuralNetConfiguration.Builder()
            .seed(1)
            .updater(new Sgd(0.1))
            .graphBuilder()
            .addInputs("in")
            .setInputTypes(InputType.convolutional(8, 8, 3))
            .addLayer(
                "conv",
                new ConvolutionLayer.Builder(3, 3)
                    .stride(2, 2)
                    .nOut(2 * (5 + 3))
                    .activation(Activation.IDENTITY)
                    .build(),
                "in")
            .addLayer(
                "yolo",
                new Yolo2OutputLayer.Builder()
                    .boundingBoxPriors(Nd4j.create(new double[][] {{1, 1}, {2, 2}}))
                    .build(),
                "conv")
            .setOutputs("yolo")
            .build();
    final ComputationGraph net = new ComputationGraph(conf);
    net.init();
    final INDArray x1 = Nd4j.rand(DataType.FLOAT, 1, 3, 8, 8);
    final INDArray y1 = Nd4j.zeros(DataType.FLOAT, 1, 4 + 3, 3, 3);
    y1.putScalar(new int[] {0, 0, 1, 1}, 0.5);
    y1.putScalar(new int[] {0, 1, 1, 1}, 0.5);
    y1.putScalar(new int[] {0, 2, 1, 1}, 1.8);
    y1.putScalar(new int[] {0, 3, 1, 1}, 1.9);
    y1.putScalar(new int[] {0, 5, 1, 1}, 1);
    net.setInputs(x1);
    net.setLabels(y1);
    net.computeGradientAndScore();
    final double g1 = net.gradient().gradient().norm2Number().doubleValue();
    final double s1 = net.score();
    net.setInputs(Nd4j.concat(0, x1, x1, x1, x1));
    net.setLabels(Nd4j.concat(0, y1, y1, y1, y1));
    net.computeGradientAndScore();
    final double g4 = net.gradient().gradient().norm2Number().doubleValue();
    // four copies of one example: a sum is 4x the single gradient, a mean 1x
    assertEquals(4.0, g4 / g1, 1e-3, "gradient over a batch of 4 copies");
    assertEquals(1.0, net.score() / s1, 1e-3, "score over a batch of 4 copies");
  }
}
