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
set key outside right
set ylabel 'accuracy (%)'
set xlabel 'weight / activation bits'
set yrange [0:100]
set grid ytics
set bars small
set title 'cifar10_resnet20_mixed_precision: per_tensor, test split, mean ± std over seeds' noenhanced
set terminal svg size 800,450 noenhanced
set output 'results/cifar10_resnet20_mixed_precision/plot_per_tensor.svg.tmp'
plot 'results/cifar10_resnet20_mixed_precision/plot_per_tensor.dat' using 0:2:3:xtic(1) with yerrorlines lt 1 lw 2 pt 5 title 'none', '' using 0:4:5 with yerrorlines lt 2 lw 2 pt 6 title 'grad_l1'
set output
set terminal pngcairo size 800,450 noenhanced
set output 'results/cifar10_resnet20_mixed_precision/plot_per_tensor.png.tmp'
plot 'results/cifar10_resnet20_mixed_precision/plot_per_tensor.dat' using 0:2:3:xtic(1) with yerrorlines lt 1 lw 2 pt 5 title 'none', '' using 0:4:5 with yerrorlines lt 2 lw 2 pt 6 title 'grad_l1'
set output
