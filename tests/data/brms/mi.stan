// generated with brms 2.18.0
functions {
}
data {
  int<lower=1> N;  // total number of observations
  int<lower=1> N_y;  // number of observations
  vector[N_y] Y_y;  // response variable
  int<lower=1> K_y;  // number of population-level effects
  matrix[N_y, K_y] X_y;  // population-level design matrix
  int<lower=1> Ksp_y;  // number of special effects terms
  int<lower=1> N_x;  // number of observations
  vector[N_x] Y_x;  // response variable
  int<lower=0> Nmi_x;  // number of missings
  int<lower=1> Jmi_x[Nmi_x];  // positions of missings
  int<lower=1> K_x;  // number of population-level effects
  matrix[N_x, K_x] X_x;  // population-level design matrix
  // data for group-level effects of ID 1
  int<lower=1> N_1;  // number of grouping levels
  int<lower=1> M_1;  // number of coefficients per level
  int<lower=1> J_1_y[N_y];  // grouping indicator per observation
  // group-level predictor values
  vector[N_y] Z_1_y_1;
  int prior_only;  // should the likelihood be ignored?
}
transformed data {
  int Kc_y = K_y - 1;
  matrix[N_y, Kc_y] Xc_y;  // centered version of X_y without an intercept
  vector[Kc_y] means_X_y;  // column means of X_y before centering
  int Kc_x = K_x - 1;
  matrix[N_x, Kc_x] Xc_x;  // centered version of X_x without an intercept
  vector[Kc_x] means_X_x;  // column means of X_x before centering
  for (i in 2:K_y) {
    means_X_y[i - 1] = mean(X_y[, i]);
    Xc_y[, i - 1] = X_y[, i] - means_X_y[i - 1];
  }
  for (i in 2:K_x) {
    means_X_x[i - 1] = mean(X_x[, i]);
    Xc_x[, i - 1] = X_x[, i] - means_X_x[i - 1];
  }
}
parameters {
  vector[Kc_y] b_y;  // population-level effects
  real Intercept_y;  // temporary intercept for centered predictors
  vector[Ksp_y] bsp_y;  // special effects coefficients
  real<lower=0> sigma_y;  // dispersion parameter
  vector[Nmi_x] Ymi_x;  // estimated missings
  vector[Kc_x] b_x;  // population-level effects
  real Intercept_x;  // temporary intercept for centered predictors
  real<lower=0> sigma_x;  // dispersion parameter
  vector<lower=0>[M_1] sd_1;  // group-level standard deviations
  vector[N_1] z_1[M_1];  // standardized group-level effects
}
transformed parameters {
  vector[N_1] r_1_y_1;  // actual group-level effects
  real lprior = 0;  // prior contributions to the log posterior
  r_1_y_1 = (sd_1[1] * (z_1[1]));
  lprior += normal_lpdf(b_y | 0, 10);
  lprior += normal_lpdf(Intercept_y | 0, 10);
  lprior += normal_lpdf(bsp_y | 0, 10);
  lprior += student_t_lpdf(sigma_y | 3, 0, 2.5)
    - 1 * student_t_lccdf(0 | 3, 0, 2.5);
  lprior += normal_lpdf(b_x | 0, 10);
  lprior += normal_lpdf(Intercept_x | 0, 10);
  lprior += student_t_lpdf(sigma_x | 3, 0, 2.5)
    - 1 * student_t_lccdf(0 | 3, 0, 2.5);
  lprior += student_t_lpdf(sd_1 | 3, 0, 2.5)
    - 1 * student_t_lccdf(0 | 3, 0, 2.5);
}
model {
  // likelihood including constants
  if (!prior_only) {
    // vector combining observed and missing responses
    vector[N_x] Yl_x = Y_x;
    // initialize linear predictor term
    vector[N_y] mu_y = rep_vector(0.0, N_y);
    Yl_x[Jmi_x] = Ymi_x;
    mu_y += Intercept_y;
    for (n in 1:N_y) {
      // add more terms to the linear predictor
      mu_y[n] += (bsp_y[1]) * Yl_x[n] + r_1_y_1[J_1_y[n]] * Z_1_y_1[n];
    }
    target += normal_id_glm_lpdf(Y_y | Xc_y, mu_y, b_y, sigma_y);
    target += normal_id_glm_lpdf(Yl_x | Xc_x, Intercept_x, b_x, sigma_x);
  }
  // priors including constants
  target += lprior;
  target += std_normal_lpdf(z_1[1]);
}
generated quantities {
  // actual population-level intercept
  real b_y_Intercept = Intercept_y - dot_product(means_X_y, b_y);
  // actual population-level intercept
  real b_x_Intercept = Intercept_x - dot_product(means_X_x, b_x);
}

