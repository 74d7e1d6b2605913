set datafile missing 'NaN'
set linetype 1 lc rgb '#1f77b4'
set linetype 2 lc rgb '#ff7f0e'
set linetype 3 lc rgb '#2ca02c'
set linetype 4 lc rgb '#d62728'
set linetype 5 lc rgb '#9467bd'
set linetype 6 lc rgb '#8c564b'
set linetype 7 lc rgb '#e377c2'
set linetype 8 lc rgb '#7f7f7f'
set linetype 9 lc rgb '#bcbd22'
set linetype 10 lc rgb '#17becf'
set linetype 11 lc rgb '#000000'
set linetype 12 lc rgb '#aec7e8'
set linetype cycle 12
set logscale y
set grid ytics
set bars small
set xtics rotate by -60 font ',7'
set key top right font ',9'
set terminal svg size 800,450 noenhanced
set output 'results/cifar10_resnet20_mixed_precision/plot_gradient_norms.svg.tmp'
set multiplot layout 1,2 title 'cifar10_resnet20_mixed_precision: gradient l1 norms on the probe batch, last epoch' noenhanced
set title '|dCE/dW_l|_1 per layer' noenhanced
plot 'results/cifar10_resnet20_mixed_precision/plot_gradient_norms.dat' index 0 using 1:3:4:xtic(2) with yerrorlines lt 1 lw 2 pt 5 title 'none', '' index 0 using 1:5:6 with yerrorlines lt 2 lw 2 pt 6 title 'grad_l1'
set title '|dCE/da_l|_1 per point' noenhanced
plot 'results/cifar10_resnet20_mixed_precision/plot_gradient_norms.dat' index 1 using 1:3:4:xtic(2) with yerrorlines lt 1 lw 2 pt 5 title 'none', '' index 1 using 1:5:6 with yerrorlines lt 2 lw 2 pt 6 title 'grad_l1'
unset multiplot
set output
set terminal pngcairo size 800,450 noenhanced
set output 'results/cifar10_resnet20_mixed_precision/plot_gradient_norms.png.tmp'
set multiplot layout 1,2 title 'cifar10_resnet20_mixed_precision: gradient l1 norms on the probe batch, last epoch' noenhanced
set title '|dCE/dW_l|_1 per layer' noenhanced
plot 'results/cifar10_resnet20_mixed_precision/plot_gradient_norms.dat' index 0 using 1:3:4:xtic(2) with yerrorlines lt 1 lw 2 pt 5 title 'none', '' index 0 using 1:5:6 with yerrorlines lt 2 lw 2 pt 6 title 'grad_l1'
set title '|dCE/da_l|_1 per point' noenhanced
plot 'results/cifar10_resnet20_mixed_precision/plot_gradient_norms.dat' index 1 using 1:3:4:xtic(2) with yerrorlines lt 1 lw 2 pt 5 title 'none', '' index 1 using 1:5:6 with yerrorlines lt 2 lw 2 pt 6 title 'grad_l1'
unset multiplot
set output
