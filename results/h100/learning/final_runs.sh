# The runs of call 2 (sourced by run_final.sh), full mode. The new default recipe (the best of call 1's sweep within
# 15% of the base per domain) is spelled out with --set so that the runs do not depend on the checkout's defaults.
D="r=24,use_rslora=true,lora_alpha=16,loraplus_lr_ratio=16,lr_schedule=cosine,warmup_ratio=0.05,min_lr_ratio=0.1,route_margin=0.05,route_windows=4"
REF="learning_rate=0.001,lr_schedule=cosine,warmup_ratio=0.05,min_lr_ratio=0.1"
for s in 0 1 2; do
  run d_$s --strategies adapter-per-domain --seeds $s --set $D,learning_rate=0.0005 --tag ""
  run e_$s --strategies expert --seeds $s --set $REF --tag ""
  run j_$s --strategies joint --seeds $s --set $REF --tag ""
done
run b_0 --strategies adapter-per-domain --seeds 0 --set $D,learning_rate=0.001 --tag "lora+ lr 1e-3"
run f_0 --strategies full --seeds 0 --set lr_schedule=cosine,warmup_ratio=0.05,min_lr_ratio=0.1 --tag ""
run o_0 --strategies lora+replay+ewc --seeds 0 --set r=8,lora_alpha=16,learning_rate=0.005,lr_schedule=constant,use_rslora=false,loraplus_lr_ratio=1 --tag "the old default: r8 lr5e-3 const"
