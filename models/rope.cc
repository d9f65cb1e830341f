// Rotary frequencies, with the scalings model configurations ask for.
#include <cmath>
#include <numbers>

#include "models/model.h"

namespace tailor {

std::vector<double> DefaultRopeInvFreq(double theta, int32_t head_dim) {
  std::vector<double> f(static_cast<size_t>(head_dim / 2));
  for (size_t i = 0; i < f.size(); ++i) f[i] = std::pow(theta, -2.0 * static_cast<double>(i) / head_dim);
  return f;
}

std::vector<double> RopeInvFreq(const ModelConfig& c) {
  return c.rope_inv_freq.empty() ? DefaultRopeInvFreq(c.rope_theta, c.head_dim) : c.rope_inv_freq;
}

std::vector<double> Llama3ScaledInvFreq(std::vector<double> inv_freq, double factor, double low_freq_factor,
                                        double high_freq_factor, double original_max_positions) {
  const double low_freq_wavelen = original_max_positions / low_freq_factor;
  const double high_freq_wavelen = original_max_positions / high_freq_factor;
  for (double& f : inv_freq) {
    const double wavelen = 2.0 * std::numbers::pi / f;
    if (wavelen > low_freq_wavelen) {
      f = f / factor;
    } else if (wavelen >= high_freq_wavelen) {  // between: interpolate
      const double smooth = (original_max_positions / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
      f = (1.0 - smooth) * f / factor + smooth * f;
    }
  }
  return inv_freq;
}

}  // namespace tailor
