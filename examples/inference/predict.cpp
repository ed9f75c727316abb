// recsys_predict: run one batch through a TorchScript model saved by recsys_lib (no Python at run time).
//
//   recsys_predict MODEL.pt INPUTS.pt OUTPUTS.pt [OP_LIBRARY.so ...]
//
// MODEL.pt    a scripted module whose forward takes Dict[str, Tensor] and returns Dict[str, Tensor]
//             (e.g. recsys_lib.inference.dlrm_predict.DLRMPredictFactory's output).
// INPUTS.pt   a scripted container module whose buffers are the batch; "__" in a buffer name stands for "."
//             ("id_list_features__values" -> "id_list_features.values").
// OUTPUTS.pt  written with torch::pickle_save: the output dict, readable by Python's torch.load.
// OP_LIBRARY  shared libraries registering custom operators (FBGEMM's torch.ops.fbgemm.*), loaded in order
//             with RTLD_GLOBAL before the model is deserialised.
#include <dlfcn.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <torch/script.h>
#include <torch/serialize.h>

namespace {

std::string dotted(std::string name) {
  for (size_t pos = name.find("__"); pos != std::string::npos; pos = name.find("__", pos + 1)) {
    name.replace(pos, 2, ".");
  }
  return name;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "usage: " << argv[0] << " MODEL.pt INPUTS.pt OUTPUTS.pt [OP_LIBRARY.so ...]\n";
    return 2;
  }
  for (int i = 4; i < argc; ++i) {
    if (dlopen(argv[i], RTLD_NOW | RTLD_GLOBAL) == nullptr) {
      std::cerr << "cannot load operator library " << argv[i] << ": " << dlerror() << "\n";
      return 3;
    }
  }
  torch::jit::script::Module model;
  torch::jit::script::Module inputs;
  try {
    model = torch::jit::load(argv[1]);
    inputs = torch::jit::load(argv[2]);
  } catch (const c10::Error& e) {
    std::cerr << "cannot load " << argv[1] << " / " << argv[2] << ": " << e.what() << "\n";
    return 4;
  }
  model.eval();

  c10::Dict<std::string, at::Tensor> batch;
  for (const auto& buffer : inputs.named_buffers(/*recurse=*/false)) {
    batch.insert(dotted(buffer.name), buffer.value);
  }

  torch::NoGradGuard no_grad;
  auto start = std::chrono::steady_clock::now();
  c10::IValue result = model.forward({batch});
  auto elapsed = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();

  std::vector<char> bytes = torch::pickle_save(result);
  std::ofstream out(argv[3], std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  std::cout << "ran " << batch.size() << " inputs in " << elapsed << " ms; wrote " << argv[3] << "\n";
  return 0;
}
