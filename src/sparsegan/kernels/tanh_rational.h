/* tanh(v) = v P(v^2) / Q(v^2) on [-c, c], saturating beyond c (where tanh is 1 to float precision):
 * a [13/6] rational minimax fit, the coefficients Eigen uses for float tanh. The one definition of
 * the sparse runtime's fused tanh: the C kernel includes this file, the numba kernel reads it
 * (sparsegan.inference.csr_kernel). Maximum error against float64 tanh over [-10, 10]: 2.6e-7. */
#define SG_TANH_CLAMP 7.90531110763549805
#define SG_TANH_P {-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11, 5.12229709037114e-08, 1.48572235717979e-05, 6.37261928875436e-04, 4.89352455891786e-03}
#define SG_TANH_Q {1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03}
